#![allow(clippy::unwrap_used)]
//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`) through the checks the fuzz targets run, so that an
//! input that once broke a target, or reached new code, is checked by every `cargo test`.

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir` (none when it does not exist), README files aside.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("README")))
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let mut total = 0;
    for (target, check) in custodian_fuzz_checks::TARGETS {
        let files = inputs(&fuzz_dir().join(kind).join(target));
        for file in &files {
            let data = fs::read(file).unwrap();
            // Name the input if its check fails.
            eprintln!("replaying {}", file.display());
            check(&data);
        }
        total += files.len();
    }
    total
}

#[test]
fn every_regression_input_passes_its_check() {
    replay("regressions");
}

#[test]
fn every_corpus_input_passes_its_check() {
    let n = replay("corpus");
    // The seeds at least are committed: an empty replay would prove nothing.
    assert!(n >= 4, "only {n} corpus files under {}", fuzz_dir().display());
}
