//! STATEMENT NEW_DATA_AVAILABLE / EXISTING_DATA_UPDATED: statement.available / .updated. The
//! `data` is Arcadia's *summarized* statement: totals, plus per-account and per-meter lines.

use serde_json::Value;
use tributary_plugin_sdk::convert::{date_at, money, quantity, str_at, timestamp_at};
use tributary_plugin_sdk::prelude::*;

use super::account::credential_id;
use super::{Envelope, Mapper, base_references, event, institution, push_unique};

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
    };
    let references = References {
        connection_id: credential_id(data),
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
    StatementAccountLine {
        account_id: str_at(line, "accountId"),
        account_number: m.personal("account_number", &str_at(line, "accountNumber")),
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
    }
}

fn meter_line(m: &Mapper, meter: &Value, account_currency: &str) -> StatementMeterLine {
    let currency = m.currency(meter, Some(account_currency));
    StatementMeterLine {
        meter_id: str_at(meter, "meterId"),
        meter_number: m.personal("meter_number", &str_at(meter, "meterNumber")),
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
    }
}

fn amount(object: &Value, key: &str, currency: &str) -> Option<Money> {
    object.get(key).and_then(|value| money(value, currency))
}
