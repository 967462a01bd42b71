//! Administration: the `Admin` gRPC service (durable consumers, dead letters and their
//! redrive) and the `Adapters` service. The CLI and any other admin front end go through these.

pub mod adapters;
pub mod redact;
pub mod redrive;

use tonic::{Request, Response, Status};
use tributary_model::v1::{
    Consumer, DeadLetter, DeleteConsumerRequest, DeleteConsumerResponse, ListConsumersRequest,
    ListConsumersResponse, ListDeadLettersRequest, ListDeadLettersResponse,
    RedriveDeadLettersRequest, RedriveDeadLettersResponse, RedriveOutcome, ResetConsumerRequest,
    reset_consumer_request::Position,
};

use crate::app::App;
use crate::error::{ErrorCode, ServiceError, log_status};
use crate::proto::admin_server::Admin;
use redact::Redactor;

/// Dead letters returned (or redriven) per call at most.
const MAX_PAGE: usize = 1000;
/// Dead letters redriven per call by default.
const REDRIVE_PAGE: usize = 100;

/// The admin service, on the same sources and log as the rest.
#[derive(Clone)]
pub struct AdminService {
    app: App,
}

impl AdminService {
    /// Administers `app`'s log.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn list_consumers(
        &self,
        _request: Request<ListConsumersRequest>,
    ) -> Result<Response<ListConsumersResponse>, Status> {
        let consumers = self.app.log.consumers().await.map_err(log_status)?;
        Ok(Response::new(ListConsumersResponse { consumers }))
    }

    async fn reset_consumer(
        &self,
        request: Request<ResetConsumerRequest>,
    ) -> Result<Response<Consumer>, Status> {
        let request = request.into_inner();
        let log = &self.app.log;
        let after = match request.position {
            Some(Position::AfterSequence(sequence)) => sequence,
            Some(Position::ToTime(time)) => {
                log.sequence_before_time(time).await.map_err(log_status)?
            }
            None => {
                return Err(ErrorCode::InvalidArgument.status("give after_sequence or to_time"));
            }
        };
        let consumer = log
            .reset_consumer(&request.name, after)
            .await
            .map_err(log_status)?;
        Ok(Response::new(consumer))
    }

    async fn delete_consumer(
        &self,
        request: Request<DeleteConsumerRequest>,
    ) -> Result<Response<DeleteConsumerResponse>, Status> {
        let deleted = self
            .app
            .log
            .delete_consumer(&request.into_inner().name)
            .await
            .map_err(log_status)?;
        Ok(Response::new(DeleteConsumerResponse { deleted }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 100,
            n => (n as usize).min(MAX_PAGE),
        };
        let include_resolved = request.include_resolved;
        let mut dead_letters = self
            .scan(request.after_id, limit, |d| {
                include_resolved || d.resolved_at.is_none()
            })
            .await?;
        for letter in &mut dead_letters {
            self.present(letter, request.include_raw);
        }
        dead_letters.truncate(limit);
        Ok(Response::new(ListDeadLettersResponse { dead_letters }))
    }

    async fn redrive_dead_letters(
        &self,
        request: Request<RedriveDeadLettersRequest>,
    ) -> Result<Response<RedriveDeadLettersResponse>, Status> {
        let request = request.into_inner();
        if request.ids.len() > MAX_PAGE {
            return Err(ErrorCode::InvalidArgument
                .status(format!("at most {MAX_PAGE} dead letter ids per call")));
        }
        // One page at a time: a redrive of "all" never holds every body in memory.
        let (letters, next_after_id) = if request.ids.is_empty() {
            let limit = match request.limit {
                0 => REDRIVE_PAGE,
                n => (n as usize).min(MAX_PAGE),
            };
            let letters = self
                .scan(request.after_id, limit, |d| d.resolved_at.is_none())
                .await?;
            let next = match letters.last() {
                Some(last) if letters.len() == limit => last.id,
                _ => 0,
            };
            (letters, next)
        } else {
            (self.unresolved(&request.ids).await?, 0)
        };
        let mut outcomes = Vec::with_capacity(letters.len());
        for letter in letters {
            outcomes.push(self.redrive(letter).await?);
        }
        Ok(Response::new(RedriveDeadLettersResponse {
            outcomes,
            next_after_id,
        }))
    }
}

impl AdminService {
    /// Dead letters after `after` that `keep` selects, oldest first, at most `limit`.
    async fn scan(
        &self,
        mut after: u64,
        limit: usize,
        keep: impl Fn(&DeadLetter) -> bool,
    ) -> Result<Vec<DeadLetter>, Status> {
        let mut out = Vec::new();
        while out.len() < limit {
            let page = self
                .app
                .log
                .dead_letters(after, MAX_PAGE)
                .await
                .map_err(log_status)?;
            let Some(last) = page.last() else { break };
            after = last.id;
            out.extend(page.into_iter().filter(|d| keep(d)));
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The unresolved dead letters among `ids`.
    async fn unresolved(&self, ids: &[u64]) -> Result<Vec<DeadLetter>, Status> {
        let out = self
            .scan(0, ids.len(), |d| {
                d.resolved_at.is_none() && ids.contains(&d.id)
            })
            .await?;
        if let Some(missing) = ids.iter().find(|id| !out.iter().any(|d| d.id == **id)) {
            return Err(ErrorCode::NotFound.status(format!("no unresolved dead letter {missing}")));
        }
        Ok(out)
    }

    async fn redrive(&self, letter: DeadLetter) -> Result<RedriveOutcome, Status> {
        let id = letter.id;
        let result = redrive::redrive(&self.app, letter)
            .await
            .map_err(|error| error.to_status())?;
        Ok(RedriveOutcome {
            id,
            resolved: result.resolved,
            sequences: result.sequences,
            reason: result.reason,
        })
    }
}

impl AdminService {
    /// A dead letter as shown to an operator: raw body only on request, redacted with what its
    /// adapter declares as personal data.
    fn present(&self, letter: &mut DeadLetter, include_raw: bool) {
        letter.raw = if include_raw {
            let fields = self
                .app
                .sources
                .plugins()
                .iter()
                .find(|plugin| plugin.info().name == letter.adapter)
                .map(|plugin| plugin.info().personal_data_fields.clone())
                .unwrap_or_default();
            Redactor::new(&fields).redact_json(&letter.raw)
        } else {
            Vec::new()
        };
    }
}
