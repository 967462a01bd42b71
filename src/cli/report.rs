//! The one way the `tributary` command reports a failure: `error: <message>`, each distinct
//! cause once, and a hint for what to do next when one is known (per gRPC code: token, scope,
//! address). Never a backtrace, whatever `RUST_BACKTRACE` says: a user error is not a bug
//! (panics keep Rust's own report, backtrace included).

use tonic::Code;

/// Where the CLI looks for the server, for hints about the address.
const ADDRESS_HINT: &str = "the address comes from --server (or TRIBUTARY_SERVER), else from the \
     server's config file (--config or TRIBUTARY_CONFIG), else 127.0.0.1:50051";

/// `error` as the command prints it on stderr, ending with a newline.
pub fn render(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut status: Option<&tonic::Status> = None;
    let mut transport = false;
    for cause in error.chain() {
        if let Some(found) = cause.downcast_ref::<tonic::Status>() {
            status.get_or_insert(found);
            push_distinct(&mut parts, status_message(found));
            // A status's own source is its transport error, already in its message.
            break;
        }
        if cause.downcast_ref::<tonic::transport::Error>().is_some() {
            transport = true;
            // tonic's wrapper says only "transport error"; its source says what failed.
            if cause.source().is_some() {
                continue;
            }
        }
        push_distinct(&mut parts, cause.to_string());
    }
    let mut out = format!("error: {}\n", parts.join(": "));
    if let Some(hint) = status.and_then(hint_for_status) {
        out.push_str(&format!("hint: {hint}\n"));
    } else if transport {
        out.push_str(&format!(
            "hint: is the server running there? {ADDRESS_HINT}\n"
        ));
    }
    out
}

/// Prints `error` on stderr ([`render`]).
pub fn print(error: &anyhow::Error) {
    eprint!("{}", render(error));
}

/// Adds `text` unless a part already says it (an error that repeats its source's message).
fn push_distinct(parts: &mut Vec<String>, text: String) {
    let text = text.trim().to_owned();
    if text.is_empty() || parts.iter().any(|part| part.contains(&text)) {
        return;
    }
    parts.push(text);
}

/// A status as a sentence: its message, or its code's description when it has none.
fn status_message(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        status.code().description().to_owned()
    } else {
        status.message().to_owned()
    }
}

/// What to do about a status, by its code.
fn hint_for_status(status: &tonic::Status) -> Option<String> {
    let hint = match status.code() {
        Code::Unauthenticated => {
            "pass a token with --token or TRIBUTARY_TOKEN: the secret of one of the server's \
             [[grpc.credentials]]"
                .to_owned()
        }
        Code::PermissionDenied => {
            "the token's credential lacks what this command needs: see its `scopes` (and \
             `sources`, `types`, `consumers`) in the server's [[grpc.credentials]]; admin \
             commands need the `admin` scope; `events` commands name the sources and types \
             they read with --source and --type"
                .to_owned()
        }
        Code::Unimplemented => {
            "this address does not serve this command's service: when the server sets \
             ops.grpc_listen, the admin commands (consumers, dead-letters, raw, replay, \
             archive, adapter try) are served only there; pass --config with the server's \
             config file, or --server with the ops.grpc_listen address"
                .to_owned()
        }
        Code::Unavailable if status.message().contains("connect") => {
            format!("is the server running there? {ADDRESS_HINT}")
        }
        _ => return None,
    };
    Some(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_prints_its_message_once_with_its_hint() {
        let error = anyhow::Error::from(tonic::Status::unauthenticated(
            "missing or invalid bearer token",
        ));
        assert_eq!(
            render(&error),
            "error: missing or invalid bearer token\nhint: pass a token with --token or \
             TRIBUTARY_TOKEN: the secret of one of the server's [[grpc.credentials]]\n"
        );
        let error = anyhow::Error::from(tonic::Status::not_found("no consumer named `x`"));
        assert_eq!(render(&error), "error: no consumer named `x`\n");
        let error = anyhow::Error::from(tonic::Status::unimplemented(""));
        assert!(
            render(&error).starts_with(
                "error: Operation is not implemented or not supported\nhint: this address \
                 does not serve"
            ),
            "{}",
            render(&error)
        );
    }

    #[test]
    fn causes_that_repeat_are_printed_once() {
        let error = anyhow::anyhow!("Database already open. Cannot acquire lock.")
            .context("event log storage failed: Database already open. Cannot acquire lock.")
            .context("cannot open the event log in /data");
        assert_eq!(
            render(&error),
            "error: cannot open the event log in /data: event log storage failed: Database \
             already open. Cannot acquire lock.\n"
        );
    }
}
