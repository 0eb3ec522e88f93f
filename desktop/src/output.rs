//! Printing: aligned tables for people, `{"data": …}` / `{"data": null, "error": …}` for machines.

use serde::Serialize;
use std::process::ExitCode;
use stocksync_node::NodeError;

/// Exit code for success.
pub const DONE: u8 = 0;
/// Exit code when a rule refused the command or something was not found.
pub const REFUSED: u8 = 1;
/// Exit code for bad input (also clap's own usage errors).
pub const BAD_INPUT: u8 = 2;
/// Exit code when the local database failed (disk, I/O, unreadable data).
pub const STORAGE: u8 = 3;
/// Exit code when the hub could not be reached: nothing is lost, try again later.
pub const OFFLINE: u8 = 4;
/// Exit code when the hub wants this device to enroll (again).
pub const AUTH_REQUIRED: u8 = 5;
/// Exit code when the hub answered with an error that retrying will not fix.
pub const HUB_ERROR: u8 = 6;

/// The exit code a node error maps to.
pub fn exit_code(e: &NodeError) -> u8 {
    match e {
        NodeError::Invalid { .. } => BAD_INPUT,
        NodeError::Storage { .. } => STORAGE,
        NodeError::NotInitialised
        | NodeError::AlreadyInitialised { .. }
        | NodeError::NotFound { .. }
        | NodeError::Rule { .. } => REFUSED,
        NodeError::Offline { .. } => OFFLINE,
        NodeError::AuthRequired { .. } => AUTH_REQUIRED,
        NodeError::Hub { .. } => HUB_ERROR,
    }
}

/// Writes one line to stdout. A reader that went away (`stocksync node … stock | head -1`) ends
/// the process quietly with 0: it had what it wanted, and the database holds the rest.
pub fn print_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(DONE));
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(i32::from(STORAGE));
    }
}

/// `println!` that carries on when nobody reads stdout any more (a closed pipe) instead of
/// panicking: the hub keeps serving, and the demo's exit code still says whether its checks
/// held.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use say;

/// Prints a successful result: JSON `{"data": …}`, or the human text.
pub fn success<T: Serialize>(json: bool, data: &T, human: impl FnOnce() -> String) -> ExitCode {
    if json {
        print_line(&serde_json::json!({ "data": data }).to_string());
    } else {
        let text = human();
        if !text.is_empty() {
            print_line(text.trim_end());
        }
    }
    ExitCode::from(DONE)
}

/// A database path that does not exist, for commands that must not create one.
pub fn no_database(path: &std::path::Path) -> NodeError {
    NodeError::NotFound {
        entity: "database".into(),
        key: path.display().to_string(),
    }
}

/// What the error says; a missing database says which commands create one.
fn message(e: &NodeError) -> String {
    match e {
        NodeError::NotFound { entity, key } if entity == "database" => {
            format!("no such database: {key} (only `init` and `enroll` create one; check --db)")
        }
        e => e.to_string(),
    }
}

/// A command line clap refused (unknown flag, missing or unparsable value): the JSON error
/// when `--json` was given, clap's own text otherwise; exit 2 either way. Help and version
/// print as usual.
pub fn usage_error(e: clap::Error, json: bool) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !json || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    // clap's text up to the usage: "error: …" and any indented lines that belong to it.
    let rendered = e.render().to_string();
    let text = rendered
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_owned();
    // `--qty <QTY>` → `qty`, `<CONFLICT_ID>` → `conflict_id`; no argument: the command line.
    let args: Vec<String> = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => vec![arg.clone()],
        Some(ContextValue::Strings(args)) => args.clone(),
        _ => Vec::new(),
    };
    let field = |arg: &str| {
        // A group reads `<--use-value <VALUE>|--clear|--dismiss>`: its first member names it.
        let name = arg
            .trim_start_matches('<')
            .split([' ', '|'])
            .next()
            .unwrap_or_default();
        name.trim_start_matches('-')
            .trim_matches(['<', '>'])
            .replace('-', "_")
            .to_lowercase()
    };
    let mut details = stocksync_model::ValidationErrors::new();
    for arg in &args {
        let message = if e.kind() == ErrorKind::MissingRequiredArgument {
            format!("Required ({arg})")
        } else {
            text.clone()
        };
        details.add(field(arg), message);
    }
    if details.is_empty() {
        details.add("command", text);
    }
    let error = NodeError::Invalid { details };
    failure(true, &error)
}

/// Prints an error (JSON on stdout, text on stderr) and returns its exit code.
pub fn failure(json: bool, e: &NodeError) -> ExitCode {
    if json {
        print_line(
            &serde_json::json!({
                "data": null,
                "error": {"code": e.code(), "message": message(e), "details": e.details()},
            })
            .to_string(),
        );
    } else {
        if let NodeError::Invalid { details } = e {
            eprintln!("error: invalid input");
            for (field, messages) in &details.0 {
                for m in messages {
                    eprintln!("  {field}: {m}");
                }
            }
        } else {
            eprintln!("error: {}", message(e));
        }
        match e {
            NodeError::NotFound { entity, .. } if entity == "database" => eprintln!(
                "  hint: stocksync node --db PATH enroll --hub URL --enrollment-key KEY \
                 (or init --org ORG --branch BRANCH --name NAME --role handheld to work offline)"
            ),
            NodeError::NotInitialised => eprintln!(
                "  hint: stocksync node --db PATH enroll --hub URL --enrollment-key KEY \
                 (or init --org ORG --branch BRANCH --name NAME --role handheld to work offline)"
            ),
            NodeError::Offline { .. } => eprintln!(
                "  hint: check the hub's address and the network; nothing is lost (unsent ops stay in the outbox): try again later"
            ),
            NodeError::AuthRequired { .. } => eprintln!(
                "  hint: stocksync node --db PATH enroll --hub URL --enrollment-key KEY (the device keeps its id and its ops)"
            ),
            _ => {}
        }
    }
    ExitCode::from(exit_code(e))
}

/// A plain text table: a header row and left-aligned columns, numbers right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..header.len())
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r[i].is_empty()
                        || r[i]
                            .trim_start_matches(['-', '+'])
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == '.')
                })
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric[i] {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.clone()));
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

/// `+5` / `-3` / `0`, for deltas.
pub fn signed(d: stocksync_model::Decimal) -> String {
    if d.is_positive() {
        format!("+{d}")
    } else {
        d.to_string()
    }
}
