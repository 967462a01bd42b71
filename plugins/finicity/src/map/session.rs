//! Session activity: started, done, institutionSupported / institutionNotSupported,
//! institutionNotFound.

use serde_json::{Map, Value};
use tributary_plugin_sdk::model::v1::event::Payload;
use tributary_plugin_sdk::model::v1::{SessionActivity, SessionEvent, SessionReport};

use super::{Mapped, id_at, institution_at, str_of};

/// Maps a session event. `report_items` is the payload when `done` sent an array of reports.
pub(super) fn map(
    event_type: &str,
    payload: &Map<String, Value>,
    report_items: &[Value],
) -> Mapped {
    let institution = institution_at(payload);
    let mut session = SessionEvent {
        institution: institution.clone(),
        ..Default::default()
    };
    let kind = match event_type {
        "started" => {
            session.activity = SessionActivity::Started as i32;
            "session.started"
        }
        "done" => {
            session.activity = SessionActivity::Completed as i32;
            session.reports = if report_items.is_empty() {
                reports_in_object(payload)
            } else {
                reports(report_items)
            };
            "session.completed"
        }
        "institutionSupported" | "institutionNotSupported" => {
            session.activity = SessionActivity::InstitutionChosen as i32;
            session.institution_supported = Some(event_type == "institutionSupported");
            "session.institution_chosen"
        }
        _ => {
            // institutionNotFound
            session.activity = SessionActivity::InstitutionNotFound as i32;
            session.search_query = str_of(payload, "query");
            "session.institution_not_found"
        }
    };
    Mapped {
        kind,
        payload: Payload::Session(session),
        connection_id: id_at(payload, "institutionLoginId"),
        institution,
        account_ids: Vec::new(),
    }
}

/// Report info inside an object payload: an array under `reportData` or `reports`, or the
/// payload itself when it names a report (`reportId`).
fn reports_in_object(payload: &Map<String, Value>) -> Vec<SessionReport> {
    for key in ["reportData", "reports"] {
        if let Some(Value::Array(items)) = payload.get(key) {
            return reports(items);
        }
    }
    report(payload).into_iter().collect()
}

fn reports(items: &[Value]) -> Vec<SessionReport> {
    items
        .iter()
        .filter_map(|item| match item {
            Value::Object(object) => report(object),
            Value::String(id) if !id.trim().is_empty() => Some(SessionReport {
                id: id.trim().to_owned(),
                ..Default::default()
            }),
            _ => None,
        })
        .collect()
}

/// One report description; `None` when it names no report at all.
fn report(object: &Map<String, Value>) -> Option<SessionReport> {
    let mut id = id_at(object, "reportId");
    if id.is_empty() {
        id = id_at(object, "id");
    }
    let mut report_type = str_of(object, "type");
    if report_type.is_empty() {
        report_type = str_of(object, "reportType");
    }
    let report = SessionReport {
        id,
        r#type: report_type,
        portfolio_id: id_at(object, "portfolioId"),
        status: str_of(object, "status"),
    };
    (!report.id.is_empty() || !report.portfolio_id.is_empty()).then_some(report)
}
