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

/// Prints a successful result: JSON `{"data": …}`, or the human text.
pub fn success<T: Serialize>(json: bool, data: &T, human: impl FnOnce() -> String) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({ "data": data }));
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{}", text.trim_end());
        }
    }
    ExitCode::from(DONE)
}

/// Prints an error (JSON on stdout, text on stderr) and returns its exit code.
pub fn failure(json: bool, e: &NodeError) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "data": null,
                "error": {"code": e.code(), "message": e.to_string(), "details": e.details()},
            })
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
            eprintln!("error: {e}");
        }
        match e {
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
