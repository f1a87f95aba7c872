//! `ferry calls get|cancel|list` (`/system/async-calls`) and `ferry dead-letters
//! list|show|redrive` (`/system/dead-letters`).

use ferry_proto::calls::{CallStatus, DeadLetterSummary};

use crate::args::{CallsCommand, DeadLettersCommand};
use crate::client::{encode, query_string};
use crate::error::Result;
use crate::{Ctx, output};

use super::invoke::summary;

/// Runs a `ferry calls` command.
pub(super) async fn calls(ctx: &Ctx, command: CallsCommand) -> Result<()> {
    let client = ctx.client()?;
    match command {
        CallsCommand::Get { id } => show_call(ctx, &client.call(&id).await?),
        CallsCommand::Cancel { id } => {
            let status = client.cancel(&id).await?;
            output::note(&format!("ferry: cancelled call {id}"));
            if ctx.global.json {
                output::json(&status)?;
            }
            Ok(())
        }
        CallsCommand::List {
            function,
            namespace,
            limit,
        } => {
            let list = client.calls(&function, namespace.as_deref(), limit).await?;
            if ctx.global.json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|c| {
                    vec![
                        c.call_id.clone(),
                        c.state.as_str().to_owned(),
                        c.attempts.to_string(),
                        c.last_status.map(|s| s.to_string()).unwrap_or_default(),
                        c.submitted_at.clone(),
                    ]
                })
                .collect();
            let header = ["CALL ID", "STATE", "ATTEMPTS", "LAST STATUS", "SUBMITTED"];
            output::stdout(&output::table(&header, &rows))
        }
    }
}

fn show_call(ctx: &Ctx, status: &CallStatus) -> Result<()> {
    if ctx.global.json {
        output::json(status)
    } else {
        output::stdout(&summary(status))
    }
}

/// The dead letters of a page as a table.
fn dead_letters_table(items: &[DeadLetterSummary]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            vec![
                d.call_id.clone(),
                d.function.clone(),
                d.reason.as_str().to_owned(),
                d.attempts.to_string(),
                d.last_status.map(|s| s.to_string()).unwrap_or_default(),
                d.dead_lettered_at.clone(),
            ]
        })
        .collect();
    let header = [
        "CALL ID",
        "FUNCTION",
        "REASON",
        "ATTEMPTS",
        "LAST STATUS",
        "DEAD SINCE",
    ];
    output::table(&header, &rows)
}

/// Runs a `ferry dead-letters` command.
pub(super) async fn dead_letters(ctx: &Ctx, command: DeadLettersCommand) -> Result<()> {
    let client = ctx.client()?;
    match command {
        DeadLettersCommand::List {
            function,
            namespace,
            limit,
            after,
        } => {
            let mut query = Vec::new();
            query.extend(function.map(|f| ("function", f)));
            query.extend(namespace.map(|n| ("namespace", n)));
            query.extend(limit.map(|l| ("limit", l.to_string())));
            query.extend(after.map(|a| ("after", a.to_string())));
            let page = client.dead_letters(&query).await?;
            if ctx.global.json {
                return output::json(&page);
            }
            output::stdout(&dead_letters_table(&page.items))?;
            if let Some(next) = page.next {
                output::note(&format!("ferry: more with --after {next}"));
            }
            Ok(())
        }
        DeadLettersCommand::Show { id } => {
            let letter = client.dead_letter(&id).await?;
            // The whole dead letter is structured data: JSON either way.
            output::json(&letter)
        }
        DeadLettersCommand::Redrive {
            id,
            function,
            namespace,
        } => {
            let path = match (id, function) {
                (Some(id), _) => format!("/system/dead-letters/{}/redrive", encode(&id)),
                (None, function) => {
                    let mut query = Vec::new();
                    query.extend(function.map(|f| ("function", f)));
                    query.extend(namespace.map(|n| ("namespace", n)));
                    format!("/system/dead-letters/redrive{}", query_string(&query))
                }
            };
            let answer = client.redrive(&path).await?;
            if ctx.global.json {
                return output::json(&answer);
            }
            match answer.get("redriven") {
                Some(n) => output::stdout(&format!("redriven: {n}\n")),
                None => {
                    let status: CallStatus = serde_json::from_value(answer).map_err(|e| {
                        crate::error::Error::Protocol {
                            path: path.clone(),
                            message: e.to_string(),
                        }
                    })?;
                    output::stdout(&summary(&status))
                }
            }
        }
    }
}
