//! STATEMENT NEW_DATA_AVAILABLE / EXISTING_DATA_UPDATED: statement.available / .updated. The
//! `data` is Arcadia's *summarized* statement: totals, plus per-account and per-meter lines.

use serde_json::Value;
use tributary_plugin_sdk::convert::{date_at, money, quantity, str_at, timestamp_at};
use tributary_plugin_sdk::prelude::*;

use super::account::credential_id;
use super::{
    ACCOUNT_NUMBER, Envelope, METER_NUMBER, Mapper, base_references, event, institution,
    push_unique,
};

/// Maps one statement event as `event_type`. Amounts are exact decimals; the currency is the
/// item's `currencyCode`, else the statement's, else the configured default (maybe empty).
pub fn map(m: &Mapper, env: &Envelope<'_>, event_type: &str) -> Result<Event, String> {
    let data = env.data()?;
    let currency = m.currency(data, None);
    let lines: Vec<&Value> = data
        .get("accountData")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter(|i| i.is_object()).collect())
        .unwrap_or_default();
    let mut account_ids = Vec::new();
    for line in &lines {
        push_unique(&mut account_ids, str_at(line, "accountId"));
    }
    let id = str_at(data, "id");
    let payload = StatementEvent {
        id: id.clone(),
        r#type: str_at(data, "type"),
        invoice_number: str_at(data, "invoiceNumber"),
        statement_date: date_at(data, "statementDate"),
        period_start: date_at(data, "periodStartDate"),
        period_end: date_at(data, "periodEndDate"),
        due_date: date_at(data, "dueDate"),
        amount_due: amount(data, "amountDue", &currency),
        total_charges: amount(data, "totalCharges", &currency),
        outstanding_balance: amount(data, "outstandingBalance", &currency),
        data_ingestion_method: str_at(data, "dataIngestionMethod"),
        discovered_at: timestamp_at(data, "discoveredAt"),
        accounts: lines
            .iter()
            .map(|line| account_line(m, line, &currency))
            .collect(),
        institution: institution(data.get("provider")),
        errors: env.errors.clone(),
        summary_account_number: m.personal(ACCOUNT_NUMBER, &str_at(data, "summaryAccountNumber")),
        created_at: timestamp_at(data, "createdAt"),
    };
    let references = References {
        connection_id: credential_id(data, Some("accountData")),
        account_ids,
        ..base_references(data)
    };
    Ok(event(
        env,
        event_type,
        id,
        references,
        Payload::Statement(payload),
    ))
}

fn account_line(m: &Mapper, line: &Value, statement_currency: &str) -> StatementAccountLine {
    let currency = m.currency(line, Some(statement_currency));
    let provider = line.get("provider").filter(|p| p.is_object());
    let provider_str = |key: &str| provider.map(|p| str_at(p, key)).unwrap_or_default();
    StatementAccountLine {
        account_id: str_at(line, "accountId"),
        account_number: m.personal(ACCOUNT_NUMBER, &str_at(line, "accountNumber")),
        due_date: date_at(line, "dueDate"),
        amount_due: amount(line, "amountDue", &currency),
        total_charges: amount(line, "totalCharges", &currency),
        outstanding_balance: amount(line, "outstandingBalance", &currency),
        meters: line
            .get("meterData")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|meter| meter.is_object())
            .map(|meter| meter_line(m, meter, &currency))
            .collect(),
        institution: institution(provider),
        provider_classification: provider_str("classification"),
        publisher_provider_account_id: provider_str("publisherProviderAccountId"),
    }
}

fn meter_line(m: &Mapper, meter: &Value, account_currency: &str) -> StatementMeterLine {
    let currency = m.currency(meter, Some(account_currency));
    StatementMeterLine {
        meter_id: str_at(meter, "meterId"),
        meter_number: m.personal(METER_NUMBER, &str_at(meter, "meterNumber")),
        point_of_delivery_number: str_at(meter, "pointOfDeliveryNumber"),
        service_type: str_at(meter, "serviceType"),
        read_date: date_at(meter, "meterReadDate"),
        previous_read_date: date_at(meter, "previousReadDate"),
        amount_due: amount(meter, "amountDue", &currency),
        total_charges: amount(meter, "totalCharges", &currency),
        outstanding_balance: amount(meter, "outstandingBalance", &currency),
        total_usage: meter
            .get("totalUsage")
            .and_then(|usage| quantity(usage, &str_at(meter, "totalUsageUnit"))),
        service_type_classification: str_at(meter, "serviceTypeClassification"),
    }
}

fn amount(object: &Value, key: &str, currency: &str) -> Option<Money> {
    object.get(key).and_then(|value| money(value, currency))
}
