use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = custodian::cli::Cli::parse();
    match custodian::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
