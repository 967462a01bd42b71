//! Session activity: started, done, institutionSupported / institutionNotSupported,
//! institutionNotFound.

use tributary_plugin_sdk::lenient::Item;
use tributary_plugin_sdk::model::v1::event::Payload as EventPayload;
use tributary_plugin_sdk::model::v1::{SessionActivity, SessionEvent, SessionReport};

use super::payload::{DescribesReport, Payload};
use super::{Mapped, id, institution};

/// Maps a session event. `report_items` is the payload when `done` sent an array of reports.
pub(super) fn map(
    event_type: &str,
    payload: &Payload<'_>,
    report_items: &[Item<'_, Box<Payload<'_>>>],
) -> Mapped {
    let institution = institution(&payload.institution_id);
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
            session.search_query = payload.query.to_string_owned();
            "session.institution_not_found"
        }
    };
    Mapped {
        kind,
        payload: EventPayload::Session(session),
        connection_id: id(&payload.institution_login_id),
        institution,
        account_ids: Vec::new(),
    }
}

/// Report info inside an object payload: an array under `reportData` or `reports`, or the
/// payload itself when it names a report (`reportId`).
fn reports_in_object(payload: &Payload<'_>) -> Vec<SessionReport> {
    for items in [&payload.report_data, &payload.reports] {
        if let Item::Array(items) = items {
            return reports(items);
        }
    }
    report(payload).into_iter().collect()
}

fn reports<'a, T: DescribesReport<'a>>(items: &[Item<'a, T>]) -> Vec<SessionReport> {
    items
        .iter()
        .filter_map(|item| match item {
            Item::Object(object) => report(object),
            Item::Str(id) if !id.trim().is_empty() => Some(SessionReport {
                id: id.trim().to_owned(),
                ..Default::default()
            }),
            _ => None,
        })
        .collect()
}

/// One report description; `None` when it names no report at all.
fn report<'a>(object: &impl DescribesReport<'a>) -> Option<SessionReport> {
    let keys = object.report_keys();
    let mut report_id = id(keys.report_id);
    if report_id.is_empty() {
        report_id = id(keys.id);
    }
    let mut report_type = keys.r#type.to_string_owned();
    if report_type.is_empty() {
        report_type = keys.report_type.to_string_owned();
    }
    let report = SessionReport {
        id: report_id,
        r#type: report_type,
        portfolio_id: id(keys.portfolio_id),
        status: keys.status.to_string_owned(),
    };
    (!report.id.is_empty() || !report.portfolio_id.is_empty()).then_some(report)
}
