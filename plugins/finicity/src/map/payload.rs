//! The `payload` object, typed: one struct with the keys of every Connect event (each family
//! reads its own), plus the account, report and MFA question objects inside it. Each field
//! reads what the `Value` helpers of the mappers read (`id_at`, `str_of`, `bool_of`...).

use tributary_plugin_sdk::lenient::{Flag, Id, Int, Item, Num, Obj, Skip, Text};
use tributary_plugin_sdk::lenient_object;

lenient_object! {
    /// `payload` of any Connect event; a `done` payload may also be an array of [`Payload`]
    /// objects, one per report.
    pub struct Payload<'a> {
        "institutionId" => institution_id: Id<'a>,
        "institutionLoginId" => institution_login_id: Id<'a>,
        "oauth" => oauth: Flag,
        "mfa" => mfa: Flag,
        "code" => code: Text<'a>,
        "query" => query: Text<'a>,
        "accounts" => accounts: Item<'a, Account<'a>>,
        "reportData" => report_data: Item<'a, Report<'a>>,
        "reports" => reports: Item<'a, Report<'a>>,
        "reportId" => report_id: Id<'a>,
        "id" => id: Id<'a>,
        "type" => r#type: Text<'a>,
        "reportType" => report_type: Text<'a>,
        "portfolioId" => portfolio_id: Id<'a>,
        "status" => status: Text<'a>,
        "questions" => questions: Item<'a, Question<'a>>,
        "mfaChallenges" => mfa_challenges: Obj<Challenges<'a>>,
        "question" => question: Item<'a, Question<'a>>,
    }
}

lenient_object! {
    /// A full Finicity account object (`accounts[]` of discovered / added).
    pub struct Account<'a> {
        "id" => id: Id<'a>,
        "number" => number: Text<'a>,
        "name" => name: Text<'a>,
        "type" => r#type: Text<'a>,
        "status" => status: Text<'a>,
        "currency" => currency: Text<'a>,
        "balance" => balance: Num,
        "customerId" => customer_id: Id<'a>,
        "institutionId" => institution_id: Id<'a>,
        "institutionLoginId" => institution_login_id: Id<'a>,
        "createdDate" => created_date: Item<'a, Skip>,
        "lastUpdatedDate" => last_updated_date: Item<'a, Skip>,
        "displayPosition" => display_position: Int,
    }
}

lenient_object! {
    /// One item of `reportData[]` / `reports[]` of a `done` payload.
    pub struct Report<'a> {
        "reportId" => report_id: Id<'a>,
        "id" => id: Id<'a>,
        "type" => r#type: Text<'a>,
        "reportType" => report_type: Text<'a>,
        "portfolioId" => portfolio_id: Id<'a>,
        "status" => status: Text<'a>,
    }
}

lenient_object! {
    /// A challenge question given as an object.
    pub struct Question<'a> {
        "text" => text: Text<'a>,
        "question" => question: Text<'a>,
    }
}

lenient_object! {
    /// `mfaChallenges`, of which only `questions` is read.
    pub struct Challenges<'a> {
        "questions" => questions: Item<'a, Question<'a>>,
    }
}

/// The keys that describe one report, wherever they were read.
pub struct ReportKeys<'r, 'a> {
    /// `reportId`.
    pub report_id: &'r Id<'a>,
    /// `id`, when there is no `reportId`.
    pub id: &'r Id<'a>,
    /// `type`.
    pub r#type: &'r Text<'a>,
    /// `reportType`, when there is no `type`.
    pub report_type: &'r Text<'a>,
    /// `portfolioId`.
    pub portfolio_id: &'r Id<'a>,
    /// `status`.
    pub status: &'r Text<'a>,
}

/// What a report is read from: an item of `reportData`/`reports`, or a `done` payload (an
/// object naming one report, or an item of an array payload).
pub trait DescribesReport<'a> {
    /// The report's keys.
    fn report_keys(&self) -> ReportKeys<'_, 'a>;
}

impl<'a> DescribesReport<'a> for Report<'a> {
    fn report_keys(&self) -> ReportKeys<'_, 'a> {
        ReportKeys {
            report_id: &self.report_id,
            id: &self.id,
            r#type: &self.r#type,
            report_type: &self.report_type,
            portfolio_id: &self.portfolio_id,
            status: &self.status,
        }
    }
}

impl<'a> DescribesReport<'a> for Payload<'a> {
    fn report_keys(&self) -> ReportKeys<'_, 'a> {
        ReportKeys {
            report_id: &self.report_id,
            id: &self.id,
            r#type: &self.r#type,
            report_type: &self.report_type,
            portfolio_id: &self.portfolio_id,
            status: &self.status,
        }
    }
}

impl<'a, T: DescribesReport<'a>> DescribesReport<'a> for Box<T> {
    fn report_keys(&self) -> ReportKeys<'_, 'a> {
        (**self).report_keys()
    }
}
