//! The page's skeleton and the few pieces of markup every section uses. Every text that came
//! from the user's files (class, file and model names) passes through [`esc`]; the sections
//! never build markup from such text any other way.

/// The stylesheet, inlined: the page must work from a file with no network.
const CSS: &str = include_str!("report.css");
/// The script, inlined. It only filters and sorts what the HTML already holds, so the page
/// still reads with scripts off.
const JS: &str = include_str!("report.js");

/// `text` safe to place in HTML text and in quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A share in `[0, 1]` as a percentage with one decimal.
pub fn percent(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1}%", 100.0 * share)
    } else {
        "-".to_owned()
    }
}

/// A number with three decimals, `-` when it is not finite.
pub fn decimal(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".to_owned()
    }
}

/// A table whose header cells are plain text (escaped here) and whose body cells are markup
/// the caller built (escaped there). Numeric columns are right-aligned by the stylesheet.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<div class=\"scroll\"><table><thead><tr>");
    for h in header {
        out.push_str(&format!("<th scope=\"col\">{}</th>", esc(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            // The first column names the row, for screen readers too.
            if i == 0 {
                out.push_str(&format!("<th scope=\"row\">{cell}</th>"));
            } else {
                out.push_str(&format!("<td>{cell}</td>"));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// What a section says before the command that fills it has run.
pub fn not_yet(what: &str, command: &str) -> String {
    format!(
        "<p class=\"missing\">{} Run <code>{}</code> to fill this section.</p>",
        esc(what),
        esc(command)
    )
}

/// One section of the page, with the id the table of contents links to.
pub struct Section {
    /// The anchor.
    pub id: &'static str,
    /// The heading.
    pub title: &'static str,
    /// The body, markup.
    pub body: String,
}

/// The whole document: head with the inlined stylesheet, a table of contents, the
/// `notices` (what is missing, markup) and the sections, then the inlined script.
pub fn document(title: &str, notices: &str, sections: &[Section]) -> String {
    let mut out = String::with_capacity(sections.iter().map(|s| s.body.len()).sum::<usize>() + 16_384);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<meta name=\"color-scheme\" content=\"light dark\">\n");
    out.push_str(&format!(
        "<title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        esc(title)
    ));
    out.push_str(&format!(
        "<header><h1>{}</h1><nav aria-label=\"sections\"><ul>",
        esc(title)
    ));
    for s in sections {
        out.push_str(&format!("<li><a href=\"#{}\">{}</a></li>", s.id, esc(s.title)));
    }
    out.push_str("</ul></nav></header>\n<main>\n");
    out.push_str(notices);
    for s in sections {
        out.push_str(&format!(
            "<section id=\"{}\" aria-labelledby=\"{}-h\"><h2 id=\"{}-h\">{}</h2>\n{}\n</section>\n",
            s.id,
            s.id,
            s.id,
            esc(s.title),
            s.body
        ));
    }
    out.push_str(&format!("</main>\n<script>\n{JS}</script>\n</body>\n</html>\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x' & \"y\")</script>"),
            "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(esc("daisy"), "daisy");
    }

    #[test]
    fn numbers_without_a_value_are_a_dash() {
        assert_eq!(percent(0.1234), "12.3%");
        assert_eq!(percent(f64::NAN), "-");
        assert_eq!(decimal(f64::INFINITY), "-");
    }
}
