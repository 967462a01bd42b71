//! STATEMENT NEW_DATA_AVAILABLE / EXISTING_DATA_UPDATED: statement.available / .updated. The
//! `data` is Arcadia's *summarized* statement: totals, plus per-account and per-meter lines.
//!
//! Read into typed structs that borrow from the body (no `Value` tree): each field is read the
//! way the `convert` helpers read it from a `Value` (see `tributary_plugin_sdk::lenient`).

use tributary_plugin_sdk::lenient::{Num, Obj, Objects, Str, Strings, Text};
use tributary_plugin_sdk::lenient_object;
use tributary_plugin_sdk::prelude::*;

use super::typed::{
    CredentialRefs, IdOnly, Provider, correlation_ids, credential_id, date_of, instant_of,
    institution,
};
use super::{ACCOUNT_NUMBER, Envelope, METER_NUMBER, Mapper, event, number_error, push_unique};

lenient_object! {
    /// STATEMENT `data`: the keys the mapping reads.
    #[derive(Clone)]
    pub struct StatementData<'a> {
        "id" => id: Text<'a>,
        "type" => r#type: Text<'a>,
        "invoiceNumber" => invoice_number: Text<'a>,
        "statementDate" => statement_date: Str<'a>,
        "periodStartDate" => period_start_date: Str<'a>,
        "periodEndDate" => period_end_date: Str<'a>,
        "dueDate" => due_date: Str<'a>,
        "amountDue" => amount_due: Num,
        "totalCharges" => total_charges: Num,
        "outstandingBalance" => outstanding_balance: Num,
        "currencyCode" => currency_code: Text<'a>,
        "dataIngestionMethod" => data_ingestion_method: Text<'a>,
        "discoveredAt" => discovered_at: Str<'a>,
        "createdAt" => created_at: Str<'a>,
        "lastModifiedAt" => last_modified_at: Str<'a>,
        "summaryAccountNumber" => summary_account_number: Text<'a>,
        "normalizedSummaryAccountNumber" => normalized_summary_account_number: Text<'a>,
        "accountData" => account_data: Objects<AccountLine<'a>>,
        "provider" => provider: Obj<Provider<'a>>,
        "correlationId" => correlation_id: Text<'a>,
        "correlationIds" => correlation_ids: Strings<'a>,
        "credentialId" => credential_id: Text<'a>,
        "credential" => credential: Obj<IdOnly<'a>>,
        "credentialIds" => credential_ids: Strings<'a>,
        "credentials" => credentials: Objects<IdOnly<'a>>,
    }
}

lenient_object! {
    /// One `accountData[]` line.
    #[derive(Clone)]
    pub struct AccountLine<'a> {
        "accountId" => account_id: Text<'a>,
        "accountNumber" => account_number: Text<'a>,
        "normalizedAccountNumber" => normalized_account_number: Text<'a>,
        "dueDate" => due_date: Str<'a>,
        "amountDue" => amount_due: Num,
        "totalCharges" => total_charges: Num,
        "outstandingBalance" => outstanding_balance: Num,
        "currencyCode" => currency_code: Text<'a>,
        "meterData" => meter_data: Objects<MeterLine<'a>>,
        "provider" => provider: Obj<Provider<'a>>,
        "credentialId" => credential_id: Text<'a>,
        "credential" => credential: Obj<IdOnly<'a>>,
        "credentialIds" => credential_ids: Strings<'a>,
        "credentials" => credentials: Objects<IdOnly<'a>>,
    }
}

lenient_object! {
    /// One `meterData[]` line of an account line.
    #[derive(Clone)]
    pub struct MeterLine<'a> {
        "meterId" => meter_id: Text<'a>,
        "meterNumber" => meter_number: Text<'a>,
        "pointOfDeliveryNumber" => point_of_delivery_number: Text<'a>,
        "normalizedMeterNumber" => normalized_meter_number: Text<'a>,
        "normalizedPointOfDeliveryNumber" => normalized_point_of_delivery_number: Text<'a>,
        "serviceType" => service_type: Text<'a>,
        "serviceTypeClassification" => service_type_classification: Text<'a>,
        "meterReadDate" => meter_read_date: Str<'a>,
        "previousReadDate" => previous_read_date: Str<'a>,
        "amountDue" => amount_due: Num,
        "totalCharges" => total_charges: Num,
        "outstandingBalance" => outstanding_balance: Num,
        "currencyCode" => currency_code: Text<'a>,
        "totalUsage" => total_usage: Num,
        "totalUsageUnit" => total_usage_unit: Text<'a>,
    }
}

/// Maps one statement event as `event_type`. Amounts are exact decimals; the currency is the
/// item's `currencyCode`, else the statement's, else the configured default (maybe empty).
pub fn map(m: &Mapper, env: &Envelope<'_>, event_type: &str) -> Result<Event, String> {
    env.with_statement_data(|data| map_data(m, env, data, event_type))?
}

fn map_data(
    m: &Mapper,
    env: &Envelope<'_>,
    data: &StatementData<'_>,
    event_type: &str,
) -> Result<Event, String> {
    let currency = m.currency_of(data.currency_code.as_str(), None);
    let lines = &data.account_data.0;
    let mut account_ids = Vec::new();
    for line in lines {
        push_unique(&mut account_ids, line.account_id.to_string_owned());
    }
    let id = data.id.to_string_owned();
    let summary_account_number = data.summary_account_number.as_str();
    let summary_account_number_data = m.personal(ACCOUNT_NUMBER, summary_account_number);
    let payload = StatementEvent {
        id: id.clone(),
        r#type: data.r#type.to_string_owned(),
        invoice_number: data.invoice_number.to_string_owned(),
        statement_date: date_of(&data.statement_date),
        period_start: date_of(&data.period_start_date),
        period_end: date_of(&data.period_end_date),
        due_date: date_of(&data.due_date),
        amount_due: amount(data.amount_due, &currency, "amountDue")?,
        total_charges: amount(data.total_charges, &currency, "totalCharges")?,
        outstanding_balance: amount(data.outstanding_balance, &currency, "outstandingBalance")?,
        data_ingestion_method: data.data_ingestion_method.to_string_owned(),
        discovered_at: instant_of(&data.discovered_at),
        accounts: lines
            .iter()
            .enumerate()
            .map(|(i, line)| account_line(m, line, &currency, i))
            .collect::<Result<_, _>>()?,
        institution: institution(&data.provider),
        errors: env.errors.clone(),
        normalized_summary_account_number: m.personal_or_same(
            ACCOUNT_NUMBER,
            data.normalized_summary_account_number.as_str(),
            summary_account_number,
            &summary_account_number_data,
        ),
        summary_account_number: summary_account_number_data,
        created_at: instant_of(&data.created_at),
        last_modified_at: instant_of(&data.last_modified_at),
    };
    // The statement's own credential keys, then each account line's.
    let refs = std::iter::once(CredentialRefs {
        credential_id: &data.credential_id,
        credential: &data.credential,
        credential_ids: &data.credential_ids,
        credentials: &data.credentials,
    })
    .chain(lines.iter().map(|line| CredentialRefs {
        credential_id: &line.credential_id,
        credential: &line.credential,
        credential_ids: &line.credential_ids,
        credentials: &line.credentials,
    }));
    let references = References {
        connection_id: credential_id(refs),
        account_ids,
        institution: institution(&data.provider),
        correlation_ids: correlation_ids(&data.correlation_id, &data.correlation_ids),
        ..Default::default()
    };
    Ok(event(
        env,
        event_type,
        id,
        references,
        Payload::Statement(payload),
    ))
}

fn account_line(
    m: &Mapper,
    line: &AccountLine<'_>,
    statement_currency: &str,
    index: usize,
) -> Result<StatementAccountLine, String> {
    let currency = m.currency_of(line.currency_code.as_str(), Some(statement_currency));
    let provider = line.provider.0.as_ref();
    let path = |key: &str| format!("accountData[{index}].{key}");
    let account_number = m.personal(ACCOUNT_NUMBER, line.account_number.as_str());
    Ok(StatementAccountLine {
        account_id: line.account_id.to_string_owned(),
        normalized_account_number: m.personal_or_same(
            ACCOUNT_NUMBER,
            line.normalized_account_number.as_str(),
            line.account_number.as_str(),
            &account_number,
        ),
        account_number,
        due_date: date_of(&line.due_date),
        amount_due: amount(line.amount_due, &currency, &path("amountDue"))?,
        total_charges: amount(line.total_charges, &currency, &path("totalCharges"))?,
        outstanding_balance: amount(
            line.outstanding_balance,
            &currency,
            &path("outstandingBalance"),
        )?,
        meters: line
            .meter_data
            .0
            .iter()
            .enumerate()
            .map(|(j, meter)| meter_line(m, meter, &currency, &path(&format!("meterData[{j}]"))))
            .collect::<Result<_, _>>()?,
        institution: institution(&line.provider),
        provider_classification: provider
            .map(|p| p.classification.to_string_owned())
            .unwrap_or_default(),
        publisher_provider_account_id: provider
            .map(|p| p.publisher_provider_account_id.to_string_owned())
            .unwrap_or_default(),
    })
}

fn meter_line(
    m: &Mapper,
    meter: &MeterLine<'_>,
    account_currency: &str,
    at: &str,
) -> Result<StatementMeterLine, String> {
    let currency = m.currency_of(meter.currency_code.as_str(), Some(account_currency));
    let path = |key: &str| format!("{at}.{key}");
    let meter_number = m.personal(METER_NUMBER, meter.meter_number.as_str());
    Ok(StatementMeterLine {
        meter_id: meter.meter_id.to_string_owned(),
        normalized_meter_number: m.personal_or_same(
            METER_NUMBER,
            meter.normalized_meter_number.as_str(),
            meter.meter_number.as_str(),
            &meter_number,
        ),
        meter_number,
        point_of_delivery_number: meter.point_of_delivery_number.to_string_owned(),
        service_type: meter.service_type.to_string_owned(),
        read_date: date_of(&meter.meter_read_date),
        previous_read_date: date_of(&meter.previous_read_date),
        amount_due: amount(meter.amount_due, &currency, &path("amountDue"))?,
        total_charges: amount(meter.total_charges, &currency, &path("totalCharges"))?,
        outstanding_balance: amount(
            meter.outstanding_balance,
            &currency,
            &path("outstandingBalance"),
        )?,
        total_usage: meter
            .total_usage
            .get()
            .map_err(|e| number_error("STATEMENT", &path("totalUsage"), e))?
            .map(|value| convert::quantity(value, meter.total_usage_unit.as_str())),
        service_type_classification: meter.service_type_classification.to_string_owned(),
        normalized_point_of_delivery_number: meter
            .normalized_point_of_delivery_number
            .to_string_owned(),
    })
}

/// An amount read exactly; one that `Money` cannot hold dead-letters the event (never
/// rounded).
fn amount(value: Num, currency: &str, field: &str) -> Result<Option<Money>, String> {
    Ok(value
        .get()
        .map_err(|e| number_error("STATEMENT", field, e))?
        .map(|value| convert::money(value, currency)))
}
