//! The audit log around admin calls: every audited action runs through one of these two, so
//! each records the same entry (caller, action, target, outcome) at the same point.

use std::future::Future;

use tonic::{Response, Status};

use crate::app::App;
use crate::audit::Caller;
use crate::error::{ErrorCode, OpError};

/// Runs an action that changes state, records how it ended, then answers with its result. The
/// action is done (or failed) whatever the audit log says, so a failure to record is logged,
/// never answered.
pub async fn action<T, E: Into<Status>>(
    app: &App,
    caller: &Caller,
    action: &'static str,
    target: impl Into<String>,
    operation: impl Future<Output = Result<T, E>>,
) -> Result<Response<T>, Status> {
    let result = operation.await.map_err(Into::into);
    app.audit
        .record_or_log(caller.record(action, target, &result))
        .await;
    Ok(Response::new(result?))
}

/// Runs a read of personal data and answers with it only once the read is on record: when the
/// audit log cannot be written the answer is refused (fail closed).
pub async fn personal_data_read<T, E: Into<Status>>(
    app: &App,
    caller: &Caller,
    action: &'static str,
    target: impl Into<String>,
    operation: impl Future<Output = Result<T, E>>,
) -> Result<Response<T>, Status> {
    let result = operation.await.map_err(Into::into);
    app.audit
        .record(caller.record(action, target, &result))
        .await
        .map_err(|error| {
            tracing::error!(%error, "audit entry not written: raw read refused");
            OpError::new(
                ErrorCode::StorageUnavailable,
                "the audit log cannot be written",
            )
        })?;
    Ok(Response::new(result?))
}
