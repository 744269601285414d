//! The report as one self-contained HTML page: totals, a waterfall of every step on a time
//! axis with the critical path highlighted, and a details panel with each step's error and
//! last log lines.
//!
//! The page is built from the report's JSON (the `--format json` schema, [`super::write_json`])
//! rather than from the `Report` value, so it shows exactly what the JSON says and can be made
//! from a saved JSON file too. It is one file with everything inline — style
//! (`html/report.css`), script (`html/report.js`, vanilla JavaScript, no library) and the data
//! in a `<script type="application/json" id="report-data">` element — and a
//! [Content Security Policy](CONTENT_SECURITY_POLICY) that forbids the browser to fetch
//! anything, so opening a report never reaches the network.
//!
//! The DOM the script builds is meant to be checked (the crate's `tests/html_report.rs` runs
//! it in a headless Chromium): one `.step` row per timeline entry in timeline order, with the
//! step's digest in `data-digest` and its outcome (`done`, `cached`, `failed`, `canceled`,
//! `interrupted`) as a class, `critical` on the rows and bars of the critical path, one `.bar`
//! per merged run interval (also with `data-digest`), and the totals in `#totals` as
//! `.card[data-total=<JSON key>]`. A step named in the address (`report.html#sha256:…`) is
//! selected on load; clicking a row selects it and puts its digest in the address.
//!
//! Hand-written rather than a templating crate: the page is one fixed frame around three
//! inserted texts (the title, HTML-escaped; the JSON, with `<`, `>` and `&` written as
//! `\u003c`, `\u003e` and `\u0026` so no `</script>` can end the data element early; the two
//! asset files), which a template engine would not make shorter or safer.

use std::io::{self, Write};

/// The policy in the page's `<meta http-equiv="Content-Security-Policy">`: no source of
/// any kind (`default-src 'none'`) except the page's own inline style and script, and
/// `data:` images; so the browser itself refuses every fetch.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
                                           script-src 'unsafe-inline'; img-src data:";

const CSS: &str = include_str!("html/report.css");
const JS: &str = include_str!("html/report.js");

/// Writes the HTML page of a report given as its JSON text (what [`super::write_json`]
/// writes), titled `title`.
///
/// Fails with [`io::ErrorKind::InvalidData`] when `json` is not one JSON value, and with the
/// writer's errors.
pub fn write_html(json: &str, title: &str, out: &mut impl Write) -> io::Result<()> {
    serde_json::from_str::<serde::de::IgnoredAny>(json)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    let title = escape_html(title);
    write!(
        out,
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <style>\n{CSS}</style>\n\
         </head>\n\
         <body>\n\
         <header><h1>{title}</h1><div class=\"cards\" id=\"totals\"></div></header>\n\
         <noscript><p class=\"empty\">This report is drawn by JavaScript; its data is the JSON \
         in the <code>report-data</code> element of this file.</p></noscript>\n\
         <div class=\"layout\">\n\
         <main class=\"waterfall\"><div class=\"legend\" id=\"legend\"></div>\
         <div id=\"chart\"></div></main>\n\
         <aside><section id=\"details\"></section><section id=\"path\"></section></aside>\n\
         </div>\n\
         <script type=\"application/json\" id=\"report-data\">"
    )?;
    write_script_json(json.trim(), out)?;
    write!(
        out,
        "</script>\n<script>\n{JS}</script>\n</body>\n</html>\n"
    )
}

/// Writes JSON text for a `<script>` element: `<`, `>` and `&` (which JSON allows only inside
/// strings) as the JSON escapes `\u003c`, `\u003e`, `\u0026`, so the text holds no `</script`
/// or `<!--` and parses to the same value.
fn write_script_json(json: &str, out: &mut impl Write) -> io::Result<()> {
    let mut rest = json;
    while let Some(at) = rest.find(['<', '>', '&']) {
        out.write_all(&rest.as_bytes()[..at])?;
        out.write_all(match rest.as_bytes()[at] {
            b'<' => b"\\u003c",
            b'>' => b"\\u003e",
            _ => b"\\u0026",
        })?;
        rest = &rest[at + 1..];
    }
    out.write_all(rest.as_bytes())
}

/// `text` with `&`, `<`, `>`, `"` and `'` as character references, for element text and
/// attribute values.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(json: &str, title: &str) -> String {
        let mut out = Vec::new();
        write_html(json, title, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The text of the `report-data` element.
    fn data(page: &str) -> &str {
        let open = "<script type=\"application/json\" id=\"report-data\">";
        let start = page.find(open).unwrap() + open.len();
        let len = page[start..].find("</script>").unwrap();
        &page[start..start + len]
    }

    #[test]
    fn the_data_cannot_end_its_script_element_and_parses_to_the_same_value() {
        let json = r#"{"timeline":[{"name":"RUN echo '</script><script>alert(1)</script>' && a > b","last_lines":["<!-- x -->","</SCRIPT >"]}]}"#;
        let page = html(json, "t");
        let data = data(&page);
        for forbidden in ["<", ">", "&"] {
            assert!(!data.contains(forbidden), "{forbidden} in {data}");
        }
        let parsed: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            parsed,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
        // The page has exactly the two script elements it opens.
        assert_eq!(page.matches("</script>").count(), 2, "{page}");
    }

    #[test]
    fn the_title_is_escaped_in_title_and_heading() {
        let page = html("{}", "<b>a & \"b\"</b>");
        assert!(
            page.contains("<title>&lt;b&gt;a &amp; &quot;b&quot;&lt;/b&gt;</title>"),
            "{page}"
        );
        assert!(page.contains("<h1>&lt;b&gt;a &amp; &quot;b&quot;&lt;/b&gt;</h1>"));
        assert!(!page.contains("<b>"));
    }

    #[test]
    fn the_page_carries_the_policy_and_no_address_outside_the_data() {
        let page = html(r#"{"last_lines":["see https://example.com/x"]}"#, "t");
        assert!(page.contains(&format!(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">"
        )));
        let without_data = page.replace(data(&page), "");
        for scheme in [
            "http://", "https://", "//cdn", "src=", "href=", "@import", "url(",
        ] {
            assert!(!without_data.contains(scheme), "{scheme}");
        }
    }

    #[test]
    fn the_assets_cannot_end_their_elements() {
        assert!(!CSS.to_ascii_lowercase().contains("</style"));
        assert!(!JS.to_ascii_lowercase().contains("</script"));
        assert!(!JS.contains("<!--"));
    }

    #[test]
    fn invalid_json_is_refused() {
        let error = write_html("{\"a\":", "t", &mut Vec::new()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(write_html("{} {}", "t", &mut Vec::new()).is_err());
    }
}
