//! The overview at `/`: owner coverage, the hosts that need attention, the IdP feed, the
//! departments with the most hosts and the offboarding backlog. Charts are inline SVG
//! drawn here (no library, no script); each has a caption and a table of the same
//! numbers, and each bar or segment links to the host list it counts.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, DurationRound, Utc};
use custodian_domain::hosts::OwnerState;
use custodian_domain::overview::{AttentionHost, ConnectionFeed, FeedHour, Overview};
use maud::{Markup, html};

use super::WebResult;
use super::layout::{Nav, ago, page, thousands, when};
use super::session::Viewer;
use crate::state::AppState;

fn state_href(state: OwnerState) -> String {
    format!("/hosts?link_state={}", state.as_str())
}

fn percent(n: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { n as f64 * 100.0 / total as f64 }
}

/// The colour class of a state's segment (the stylesheet's palette).
fn state_class(state: OwnerState) -> &'static str {
    match state {
        OwnerState::Linked => "seg-linked",
        OwnerState::NoIdentity => "seg-no-identity",
        OwnerState::Unlinked => "seg-unlinked",
        OwnerState::Ambiguous => "seg-ambiguous",
        OwnerState::OwnerDeactivated => "seg-deactivated",
        OwnerState::UserDeleted => "seg-deleted",
    }
}

fn coverage_section(o: &Overview) -> Markup {
    let total = o.total_hosts();
    // Each segment starts where the one before ends.
    let mut x = 0.0;
    let segments: Vec<(OwnerState, u64, f64, f64)> = o
        .coverage
        .iter()
        .map(|(state, n)| {
            let w = percent(*n, total) * 10.0;
            let segment = (*state, *n, x, w);
            x += w;
            segment
        })
        .collect();
    html! {
        section.card id="owner-coverage" {
            h2 { "Owner coverage" }
            figure.chart {
                figcaption id="coverage-caption" { (thousands(total)) " hosts by owner state" }
                // A group, not an image: its segments are links.
                svg.bar-stack viewBox="0 0 1000 40" preserveAspectRatio="none" role="group" aria-labelledby="coverage-caption" {
                    @for (state, n, x, w) in &segments {
                        @if *n > 0 {
                            a href=(state_href(*state)) class="segment" data-state=(state.as_str()) aria-label={ (state.label()) ": " (n) " hosts" } {
                                rect class=(state_class(*state)) x=(format!("{x:.2}")) y="0" width=(format!("{w:.2}")) height="40" {
                                    title { (state.label()) ": " (n) }
                                }
                            }
                        }
                    }
                }
            }
            table.data id="coverage-table" {
                caption.visually-hidden { "Hosts by owner state" }
                thead { tr { th scope="col" { "State" } th.num scope="col" { "Hosts" } th.num scope="col" { "Share" } } }
                tbody {
                    @for (state, n) in &o.coverage {
                        tr data-state=(state.as_str()) {
                            th scope="row" { span class={ "swatch " (state_class(*state)) } aria-hidden="true" {} a href=(state_href(*state)) { (state.label()) } }
                            td.num.count { (thousands(*n)) }
                            td.num { (format!("{:.1} %", percent(*n, total))) }
                        }
                    }
                }
            }
        }
    }
}

fn attention_table(state: OwnerState, hosts: &[AttentionHost]) -> Markup {
    let id = format!("attention-{}", state.as_str());
    html! {
        h3 id={ (id) "-title" } { (state.label()) " " a.hint href=(state_href(state)) { "see all" } }
        @if hosts.is_empty() {
            p.empty { "None." }
        } @else {
            table.data id=(id) aria-labelledby={ (id) "-title" } {
                thead { tr {
                    th scope="col" { "Host" }
                    th scope="col" { "Identity" }
                    @match state {
                        OwnerState::Ambiguous => th scope="col" { "Candidates" },
                        OwnerState::OwnerDeactivated => th scope="col" { "Owner" },
                        _ => {},
                    }
                } }
                tbody {
                    @for h in hosts {
                        tr {
                            td { a href={ "/hosts/" (h.id) } { (if h.hostname.is_empty() { "(no name)" } else { &h.hostname }) } }
                            td.mono { (h.identity.as_deref().unwrap_or("")) }
                            @match state {
                                OwnerState::Ambiguous => td { (h.candidates.join(", ")) },
                                OwnerState::OwnerDeactivated => td { (h.owner.as_deref().unwrap_or("")) },
                                _ => {},
                            }
                        }
                    }
                }
            }
        }
    }
}

fn attention_section(o: &Overview) -> Markup {
    html! {
        section.card id="needs-attention" {
            h2 { "Needs attention" }
            p.hint { "The newest hosts whose owner is unknown, uncertain, or gone (the laptops to recover)." }
            @for (state, hosts) in &o.attention { (attention_table(*state, hosts)) }
        }
    }
}

/// Buckets of `width` ending at the current one, oldest first, summing the hours in each.
fn buckets(hours: &[FeedHour], now: DateTime<Utc>, width: Duration, count: i64) -> Vec<(DateTime<Utc>, u64, u64)> {
    let last = now.duration_trunc(width).unwrap_or(now);
    (0..count)
        .rev()
        .map(|i| {
            let start = last - width * (i as i32);
            let (ok, errors) = hours
                .iter()
                .filter(|h| h.hour >= start && h.hour < start + width)
                .fold((0, 0), |(o, e), h| (o + h.ok, e + h.errors));
            (start, ok, errors)
        })
        .collect()
}

/// Stacked bars (successes under errors) of one series of buckets.
fn feed_chart(
    id: &str,
    caption: &str,
    series: &[(DateTime<Utc>, u64, u64)],
    label: impl Fn(DateTime<Utc>) -> String,
) -> Markup {
    let max = series.iter().map(|(_, o, e)| o + e).max().unwrap_or(0).max(1) as f64;
    let n = series.len().max(1) as f64;
    let slot = 1000.0 / n;
    let caption_id = format!("{id}-caption");
    html! {
        figure.chart id=(id) {
            figcaption id=(caption_id) { (caption) }
            svg.feed viewBox="0 0 1000 80" preserveAspectRatio="none" role="img" aria-labelledby=(caption_id) {
                @for (i, (start, ok, errors)) in series.iter().enumerate() {
                    @let x = i as f64 * slot;
                    @let ok_h = *ok as f64 / max * 80.0;
                    @let err_h = *errors as f64 / max * 80.0;
                    g {
                        title { (label(*start)) ": " (ok) " succeeded, " (errors) " failed" }
                        rect.feed-ok x=(format!("{:.2}", x + 1.0)) y=(format!("{:.2}", 80.0 - ok_h)) width=(format!("{:.2}", (slot - 2.0).max(1.0))) height=(format!("{ok_h:.2}")) {}
                        rect.feed-error x=(format!("{:.2}", x + 1.0)) y=(format!("{:.2}", 80.0 - ok_h - err_h)) width=(format!("{:.2}", (slot - 2.0).max(1.0))) height=(format!("{err_h:.2}")) {}
                    }
                }
            }
            details {
                summary { "The numbers" }
                table.data {
                    caption.visually-hidden { (caption) }
                    thead { tr { th scope="col" { "From" } th.num scope="col" { "Succeeded" } th.num scope="col" { "Failed" } } }
                    tbody {
                        @for (start, ok, errors) in series {
                            tr { th scope="row" { (label(*start)) } td.num { (ok) } td.num { (errors) } }
                        }
                    }
                }
            }
        }
    }
}

fn feed_section(feeds: &[ConnectionFeed], now: DateTime<Utc>) -> Markup {
    html! {
        section.card id="idp-feed" {
            h2 { "The IdP feed" }
            @if feeds.is_empty() {
                p.empty { "No IdP connection yet. " a href="/settings/integrations/identity-provider" { "Connect one" } "." }
            }
            @for f in feeds {
                @let what = if f.kind == "scim" { "SCIM requests" } else { "sync runs" };
                @let day = buckets(&f.hours, now, Duration::hours(1), 24);
                @let week = buckets(&f.hours, now, Duration::days(1), 7);
                @let (ok, errors) = day.iter().fold((0, 0), |(o, e), (_, a, b)| (o + a, e + b));
                div.feed-connection data-connection=(f.id.0) {
                    h3 { a href={ "/settings/integrations/identity-provider/" (f.id.0) } { (f.name) } }
                    p.feed-summary { (ok) " " (what) " succeeded and " (errors) " failed in the last 24 hours." }
                    @match &f.last_error {
                        Some((at, error)) => p.last-error { "Last error " (ago(*at)) " (" (when(*at)) "): " span.error-detail { (error) } },
                        None => p.hint { "No error on record." },
                    }
                    div.columns {
                        (feed_chart(&format!("feed-{}-day", f.id.0), &format!("{} per hour, last 24 hours", what), &day, |t| t.format("%H:00").to_string()))
                        (feed_chart(&format!("feed-{}-week", f.id.0), &format!("{} per day, last 7 days", what), &week, |t| t.format("%a %d %b").to_string()))
                    }
                }
            }
        }
    }
}

fn departments_section(o: &Overview) -> Markup {
    let max = o.departments.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1) as f64;
    html! {
        section.card id="by-department" {
            h2 { "By department" }
            @if o.departments.is_empty() {
                p.empty { "No host's owner has a department." }
            } @else {
                table.data.bars id="departments-table" {
                    caption { "The " (o.departments.len()) " departments with the most hosts" }
                    thead { tr { th scope="col" { "Department" } th.num scope="col" { "Hosts" } th scope="col" { span.visually-hidden { "Chart" } } } }
                    tbody {
                        @for (dept, n) in &o.departments {
                            @let href = format!("/hosts?idp_department={}", form_urlencoded::byte_serialize(dept.as_bytes()).collect::<String>());
                            tr {
                                th scope="row" { a href=(href) { (dept) } }
                                td.num { (thousands(*n)) }
                                td.bar-cell {
                                    svg viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false" {
                                        rect.dept-bar x="0" y="0" width=(format!("{:.2}", *n as f64 / max * 100.0)) height="10" {}
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn offboarding_section(o: &Overview, viewer: &Viewer) -> Markup {
    let w = &o.webhooks;
    html! {
        section.card id="offboarding" {
            h2 { "Offboarding" }
            dl.facts {
                dt { "Pending deliveries" } dd id="webhooks-pending" { (thousands(w.pending)) }
                dt { "Failing deliveries" } dd id="webhooks-failing" { (thousands(w.failing)) }
            }
            @match &w.last_failure {
                Some((error, retry)) => p.last-error { "Last failure: " span.error-detail { (error) } "; retried " (when(*retry)) "." },
                None => p.hint { "No failing delivery." },
            }
            @if viewer.can_write() {
                p { a href="/webhooks/deliveries" id="deliveries-link" { "See the deliveries" } }
            }
        }
    }
}

pub async fn show(State(state): State<AppState>, viewer: Viewer) -> WebResult<Response> {
    // Requests still queued for the feed are written first, so that its counts are current.
    state.recorder.flush().await;
    let now = Utc::now();
    let o = state.hosts().overview(now).await?;
    let body = html! {
        (coverage_section(&o))
        div.columns {
            (attention_section(&o))
            div {
                (departments_section(&o))
                (offboarding_section(&o, &viewer))
            }
        }
        (feed_section(&o.feeds, now))
    };
    Ok(page(&viewer, Nav::Overview, "Overview", body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_sum_the_hours_they_cover_and_end_at_the_current_one() {
        let now = "2026-12-06T15:42:00Z".parse::<DateTime<Utc>>().unwrap_or_default();
        let h = |s: &str, ok, errors| FeedHour { hour: s.parse().unwrap_or_default(), ok, errors };
        let hours = [h("2026-12-06T15:00:00Z", 3, 1), h("2026-12-06T14:00:00Z", 2, 0), h("2026-12-01T09:00:00Z", 5, 5)];
        let day = buckets(&hours, now, Duration::hours(1), 24);
        assert_eq!(day.len(), 24);
        assert_eq!(day[23], (hours[0].hour, 3, 1));
        assert_eq!((day[22].1, day[22].2), (2, 0));
        let week = buckets(&hours, now, Duration::days(1), 7);
        assert_eq!((week[6].1, week[6].2), (5, 1), "today");
        assert_eq!((week[1].1, week[1].2), (5, 5), "1 December");
    }
}
