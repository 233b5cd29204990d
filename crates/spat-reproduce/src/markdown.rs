//! The one markdown table writer of every table the harness prints or writes.

/// A markdown table: the header row, a `| --- |` row, then one line per row; a `|` inside a cell
/// is escaped. Every line ends with a newline.
pub fn table<H, R>(header: &[H], rows: impl IntoIterator<Item = R>) -> String
where
    H: AsRef<str>,
    R: IntoIterator,
    R::Item: AsRef<str>,
{
    let mut md = line(header);
    md.push_str(&line(vec!["---"; header.len()]));
    for row in rows {
        md.push_str(&line(row));
    }
    md
}

fn line<C: AsRef<str>>(cells: impl IntoIterator<Item = C>) -> String {
    let cells: Vec<String> = cells
        .into_iter()
        .map(|c| c.as_ref().replace('|', "\\|"))
        .collect();
    format!("| {} |\n", cells.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_has_its_header_a_rule_and_escaped_cells() {
        let md = table(&["a", "b"], [vec!["1".to_string(), "x|y".into()]]);
        assert_eq!(md, "| a | b |\n| --- | --- |\n| 1 | x\\|y |\n");
        assert_eq!(
            table(&["only"], Vec::<Vec<String>>::new()),
            "| only |\n| --- |\n"
        );
    }
}
