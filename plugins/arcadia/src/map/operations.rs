//! FILE, DELETION and DOWNLOAD status changes: file.status_changed, deletion.* (by outcome),
//! export.status_changed.

use serde_json::Value;
use tributary_plugin_sdk::convert::{bool_at, date_at, str_at, strings_at, timestamp_at};
use tributary_plugin_sdk::prelude::*;

use super::{
    ACCOUNT_NUMBER, Envelope, FILE_NAME, Mapper, base_references, event, i32_at, institution,
};

/// FILE STATUS_CHANGE: an uploaded bill's processing; account numbers via `account_number`.
pub fn file(m: &Mapper, env: &Envelope<'_>) -> Result<Event, String> {
    let data = env.data()?;
    let provider_status = str_at(data, "status");
    let status = match provider_status.as_str() {
        "QUEUED" => FileStatus::Queued,
        "IN_PROGRESS" => FileStatus::InProgress,
        "COVERAGE_REQUEST" => FileStatus::CoverageRequested,
        "FAILURE" => FileStatus::Failed,
        "SUCCESS" => FileStatus::Succeeded,
        _ => FileStatus::Unspecified,
    };
    let id = str_at(data, "id");
    let payload = FileEvent {
        id: id.clone(),
        name: m.personal(FILE_NAME, &str_at(data, "fileName")),
        status: status as i32,
        provider_status,
        provider_status_details: strings_at(data, "statusDetails"),
        statement_id: str_at(data, "statementId"),
        statement_date: date_at(data, "statementDate"),
        transfer_method: str_at(data, "transferMethod"),
        customer_action_required: bool_at(data, "isCustomerActionRequired"),
        account_numbers: strings_at(data, "accountNumbers")
            .iter()
            .filter_map(|number| m.personal(ACCOUNT_NUMBER, number))
            .collect(),
        institution: institution(data.get("provider")),
        errors: env.errors.clone(),
        created_at: timestamp_at(data, "createdAt"),
        last_modified_at: timestamp_at(data, "lastModifiedAt"),
        ..Default::default()
    };
    Ok(event(
        env,
        "file.status_changed",
        id,
        base_references(data),
        Payload::File(payload),
    ))
}

/// DELETION STATUS_CHANGE, typed by outcome: only a final success is `deletion.completed`; a
/// failure is `deletion.failed`, a deletion scheduled or under way `deletion.in_progress`, and
/// any other status `deletion.status_changed` (never claimed complete). A deleted credential
/// ("crd_...") or account ("act_...") is also put in the references.
pub fn deletion(env: &Envelope<'_>) -> Result<Event, String> {
    let data = env.data()?;
    let provider_status = str_at(data, "status");
    let target_id = str_at(data, "deletionTargetId");
    let mut references = base_references(data);
    if target_id.starts_with("crd_") {
        references.connection_id = target_id.clone();
    } else if target_id.starts_with("act_") {
        references.account_ids.push(target_id.clone());
    }
    let id = str_at(data, "id");
    let status = operation_status(&provider_status);
    let event_type = match status {
        OperationStatus::Succeeded => "deletion.completed",
        OperationStatus::Failed => "deletion.failed",
        OperationStatus::InProgress => "deletion.in_progress",
        OperationStatus::Unspecified => "deletion.status_changed",
    };
    let payload = DeletionEvent {
        id: id.clone(),
        target_id,
        status: status as i32,
        provider_status,
        account_count: i32_at(data, "accountCount"),
        meter_count: i32_at(data, "meterCount"),
        statement_count: i32_at(data, "statementCount"),
        file_count: i32_at(data, "fileCount"),
        site_count: i32_at(data, "siteCount"),
        errors: env.errors.clone(),
        created_at: timestamp_at(data, "createdAt"),
        last_modified_at: timestamp_at(data, "lastModifiedAt"),
    };
    Ok(event(
        env,
        event_type,
        id,
        references,
        Payload::Deletion(payload),
    ))
}

/// DOWNLOAD STATUS_CHANGE: export.status_changed. The download `token` is a credential (it
/// fetches the export): it is carried in its typed field for the consumer that downloads, and
/// never put in a reason, a log line or any other field.
pub fn download(env: &Envelope<'_>) -> Result<Event, String> {
    let data: &Value = env.data()?;
    let provider_status = str_at(data, "status");
    let id = str_at(data, "id");
    let payload = ExportEvent {
        id: id.clone(),
        status: operation_status(&provider_status) as i32,
        provider_status,
        method: str_at(data, "downloadMethod"),
        errors: env.errors.clone(),
        token: str_at(data, "token"),
        created_at: timestamp_at(data, "createdAt"),
        last_modified_at: timestamp_at(data, "lastModifiedAt"),
    };
    Ok(event(
        env,
        "export.status_changed",
        id,
        base_references(data),
        Payload::Export(payload),
    ))
}

/// Canonical outcome of a deletion or download. Only SUCCESS is documented; the other
/// spellings are the closest safe guesses, anything else stays UNSPECIFIED.
fn operation_status(status: &str) -> OperationStatus {
    match status {
        "SUCCESS" | "SUCCEEDED" | "COMPLETE" | "COMPLETED" => OperationStatus::Succeeded,
        "FAILURE" | "FAILED" | "ERROR" => OperationStatus::Failed,
        "QUEUED" | "PENDING" | "IN_PROGRESS" | "PROCESSING" | "SCHEDULED" => {
            OperationStatus::InProgress
        }
        _ => OperationStatus::Unspecified,
    }
}
