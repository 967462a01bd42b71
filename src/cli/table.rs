//! How list commands print: on a terminal a table (and `none` when empty), elsewhere one JSON
//! object per line for scripts (and `none` on stderr when empty, so stdout stays parseable).

use std::io::IsTerminal as _;

/// Whether stdout is a terminal: a person reads it.
pub fn on_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// `rows` under `headers`, columns padded to their widest cell, one line each.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Prints a list: a table on a terminal, JSON lines otherwise; `none` when it is empty.
pub fn print_list<T>(
    items: &[T],
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
    json: impl Fn(&T) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<()> {
    let terminal = on_terminal();
    if items.is_empty() {
        if terminal {
            println!("none");
        } else {
            eprintln!("none");
        }
        return Ok(());
    }
    if terminal {
        let rows: Vec<Vec<String>> = items.iter().map(row).collect();
        print!("{}", render(headers, &rows));
    } else {
        for item in items {
            println!("{}", serde_json::to_string(&json(item)?)?);
        }
    }
    Ok(())
}

/// A protobuf timestamp as `YYYY-MM-DD HH:MM:SS` UTC (empty when unset).
pub fn time(at: Option<&tributary_model::well_known::Timestamp>) -> String {
    at.and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let rows = vec![
            vec!["billing".to_owned(), "12".to_owned(), "0".to_owned()],
            vec!["b".to_owned(), "3".to_owned(), "1024".to_owned()],
        ];
        assert_eq!(
            super::render(&["NAME", "ACKED", "LAG"], &rows),
            "NAME     ACKED  LAG\nbilling  12     0\nb        3      1024\n"
        );
    }
}
