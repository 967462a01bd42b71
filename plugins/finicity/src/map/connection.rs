//! Connection attempts (adding, processing, invalidCredentials, unableToConnect,
//! credentialsUpdated) and MFA (mfa, mfaUpdated).

use tributary_plugin_sdk::lenient::Item;
use tributary_plugin_sdk::model::v1::event::Payload as EventPayload;
use tributary_plugin_sdk::model::v1::{
    ConnectionEvent, ConnectionFailureReason, ConnectionStatus, Credential, Institution, MfaEvent,
    MfaQuestion, MfaStage,
};

use super::payload::{Payload, Question};
use super::{Mapped, id, institution};

/// The sign-in Finicity holds (institutionLoginId at an institution), when anything is known.
fn credential(connection_id: &str, institution: &Option<Institution>) -> Option<Credential> {
    (!connection_id.is_empty() || institution.is_some()).then(|| Credential {
        id: connection_id.to_owned(),
        institution: institution.clone(),
        ..Default::default()
    })
}

/// Maps a connection event.
pub(super) fn map(event_type: &str, payload: &Payload<'_>) -> Mapped {
    let institution = institution(&payload.institution_id);
    let connection_id = id(&payload.institution_login_id);
    let mut connection = ConnectionEvent {
        provider_status: event_type.to_owned(),
        oauth: payload.oauth.is_true(),
        credential: credential(&connection_id, &institution),
        ..Default::default()
    };
    let kind = match event_type {
        "adding" => {
            connection.status = ConnectionStatus::Pending as i32;
            "connection.pending"
        }
        // Past sign-in: a report is being generated or the OAuth redirect is handled.
        "processing" => {
            connection.status = ConnectionStatus::Processing as i32;
            "connection.processing"
        }
        "invalidCredentials" => {
            connection.status = ConnectionStatus::Failed as i32;
            connection.failure_reason = ConnectionFailureReason::InvalidCredentials as i32;
            "connection.failed"
        }
        "unableToConnect" => {
            let code = payload.code.as_str().trim().to_owned();
            connection.status = ConnectionStatus::Failed as i32;
            connection.failure_reason = unable_to_connect_reason(&code) as i32;
            connection.provider_code = code;
            "connection.failed"
        }
        _ => {
            // credentialsUpdated
            connection.status = ConnectionStatus::CredentialsUpdated as i32;
            connection.mfa_required = payload.mfa.is_true();
            "connection.credentials_updated"
        }
    };
    Mapped {
        kind,
        payload: EventPayload::Connection(connection),
        connection_id,
        institution,
        account_ids: Vec::new(),
    }
}

/// Why an `unableToConnect` failed, from its `code` (Finicity's aggregation status codes, see
/// the README for the sources). The event is documented as "the institution is unavailable",
/// so no code, 102, the 9xx maintenance codes and any code not listed keep that reason.
fn unable_to_connect_reason(code: &str) -> ConnectionFailureReason {
    match code {
        "103" => ConnectionFailureReason::InvalidCredentials,
        "108" | "109" | "185" => ConnectionFailureReason::ActionRequired,
        "187" => ConnectionFailureReason::MfaFailed,
        "106" | "946" => ConnectionFailureReason::AccountNotFound,
        "945" | "947" | "948" => ConnectionFailureReason::ReauthorizationRequired,
        "972" => ConnectionFailureReason::Unsupported,
        _ => ConnectionFailureReason::InstitutionUnavailable,
    }
}

/// The challenge questions of an `mfa` payload, in order: `questions[]` (objects with `text`
/// or `question`, or plain strings), else `mfaChallenges.questions[]`, else a single
/// `question`. Finicity does not publish this payload; empty texts are skipped.
fn questions(payload: &Payload<'_>) -> Vec<MfaQuestion> {
    let nested = payload.mfa_challenges.0.as_ref().map(|c| &c.questions);
    let items: &[Item<'_, Question<'_>>] = match (&payload.questions, nested) {
        (Item::Array(items), _) | (_, Some(Item::Array(items))) => items,
        // An absent `question` gives no text, as any item without one.
        _ => std::slice::from_ref(&payload.question),
    };
    items
        .iter()
        .filter_map(|item| {
            let text = match item {
                Item::Str(text) => text,
                Item::Object(object) => {
                    if object.text.as_str().trim().is_empty() {
                        object.question.as_str()
                    } else {
                        object.text.as_str()
                    }
                }
                _ => "",
            };
            let text = text.trim();
            (!text.is_empty()).then(|| MfaQuestion {
                text: text.to_owned(),
            })
        })
        .collect()
}

/// Maps an MFA event: `mfa` (a challenge question is shown) or `mfaUpdated` (answered).
pub(super) fn map_mfa(event_type: &str, payload: &Payload<'_>) -> Mapped {
    let institution = institution(&payload.institution_id);
    let connection_id = id(&payload.institution_login_id);
    let (kind, stage) = if event_type == "mfa" {
        ("mfa.challenge_issued", MfaStage::CodeEntry)
    } else {
        ("mfa.answered", MfaStage::Answered)
    };
    Mapped {
        kind,
        payload: EventPayload::Mfa(MfaEvent {
            stage: stage as i32,
            credential: credential(&connection_id, &institution),
            questions: questions(payload),
            ..Default::default()
        }),
        connection_id,
        institution,
        account_ids: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::{Value, json};

    fn texts(payload: Value) -> Vec<String> {
        let payload = Payload::deserialize(&payload).expect("an object");
        questions(&payload).into_iter().map(|q| q.text).collect()
    }

    #[test]
    fn known_codes_get_their_own_reason() {
        use ConnectionFailureReason as R;
        let cases = [
            ("", R::InstitutionUnavailable),
            ("102", R::InstitutionUnavailable),
            ("903", R::InstitutionUnavailable),
            ("12345", R::InstitutionUnavailable),
            ("103", R::InvalidCredentials),
            ("108", R::ActionRequired),
            ("109", R::ActionRequired),
            ("185", R::ActionRequired),
            ("187", R::MfaFailed),
            ("106", R::AccountNotFound),
            ("946", R::AccountNotFound),
            ("945", R::ReauthorizationRequired),
            ("947", R::ReauthorizationRequired),
            ("948", R::ReauthorizationRequired),
            ("972", R::Unsupported),
        ];
        for (code, reason) in cases {
            assert_eq!(unable_to_connect_reason(code), reason, "{code}");
        }
    }

    #[test]
    fn question_texts_in_every_shape() {
        assert_eq!(
            texts(json!({"questions": [{"text": " Q1 "}, "Q2", {"question": "Q3"}, {}, 4]})),
            ["Q1", "Q2", "Q3"]
        );
        assert_eq!(
            texts(json!({"mfaChallenges": {"questions": [{"text": "Q"}]}})),
            ["Q"]
        );
        assert_eq!(texts(json!({"question": "Q"})), ["Q"]);
        assert_eq!(texts(json!({"question": {"text": "Q"}})), ["Q"]);
        assert!(texts(json!({"questions": "Q"})).is_empty());
        assert!(texts(json!({"institutionId": "1"})).is_empty());
    }
}
