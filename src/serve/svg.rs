//! The pages' inline SVG, drawn on the server: the segments in the model's 2-D embedding
//! (held-out customers coloured by segment, each segment's centre, and optionally one
//! customer), and the validation report's drift charts.

use std::fmt::Write;

use crate::registry::Manifest;
use crate::validate::ColumnDrift;

const WIDTH: f32 = 560.0;
const HEIGHT: f32 = 400.0;
const PAD: f32 = 28.0;
/// The least height of the points' area below the legend.
const MIN_PLOT: f32 = 240.0;
/// Segment colours (Okabe–Ito, distinguishable with colour-blindness).
const COLOURS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

fn colour(segment: usize) -> &'static str {
    COLOURS[segment % COLOURS.len()]
}

/// Escapes text for an SVG/HTML text node or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// A model's picture, drawn once when the model is loaded: everything but the customer, who is
/// added per request ([`Plot::render`]).
#[derive(Debug, Clone)]
pub struct Plot {
    /// From `<svg ...>` to the segment centres.
    head: String,
    /// The legend and `</svg>`.
    tail: String,
    /// Data → picture coordinates; `None` when the manifest has nothing to draw.
    frame: Option<Frame>,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    x0: f32,
    y0: f32,
    sx: f32,
    sy: f32,
    top: f32,
    /// The picture's height: [`HEIGHT`], or more when a long legend needs it.
    height: f32,
}

impl Frame {
    fn px(&self, x: f32) -> f32 {
        PAD + (x - self.x0) / self.sx * (WIDTH - 2.0 * PAD)
    }

    /// SVG's y grows downwards.
    fn py(&self, y: f32) -> f32 {
        self.height - PAD - (y - self.y0) / self.sy * (self.height - PAD - self.top)
    }
}

impl Plot {
    pub fn new(m: &Manifest) -> Self {
        let names: Vec<&str> = m.segments.iter().map(|s| s.name.as_str()).collect();
        Self::draw(&names, &m.embedding)
    }

    /// The picture of segments named `names` (in id order) and their embedding `map`.
    fn draw(names: &[&str], map: &crate::registry::EmbeddingMap) -> Self {
        let bounds = finite_bounds(map);
        // The legend takes the top lines and the points go below it: with many segments
        // the picture grows, so the points keep at least MIN_PLOT pixels.
        let top = 18.0 + names.len() as f32 * 16.0;
        let height = HEIGHT.max(top + MIN_PLOT + PAD);
        let mut head = String::with_capacity(32 * 1024);
        let _ = write!(
            head,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
             role=\"img\" aria-label=\"Customer segments in the model's 2-D embedding\" \
             class=\"embedding\">"
        );
        let Some((x0, x1, y0, y1)) = bounds else {
            let _ = write!(
                head,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">This model's manifest has no \
                 embedding to draw.</text>",
                WIDTH / 2.0,
                HEIGHT / 2.0
            );
            return Self {
                head,
                tail: "</svg>".into(),
                frame: None,
            };
        };
        let span = |a: f32, b: f32| if b - a > 1e-6 { b - a } else { 1.0 };
        let f = Frame {
            x0,
            y0,
            sx: span(x0, x1),
            sy: span(y0, y1),
            top,
            height,
        };
        draw_axes(&mut head, height);
        draw_embedding(&mut head, map, &f);
        Self {
            head,
            tail: legend(names),
            frame: Some(f),
        }
    }

    /// The picture with `customer` as a ringed cross in the colour of `chosen`; a customer
    /// beyond the drawn area is pinned to its edge.
    pub fn render(&self, customer: Option<[f32; 2]>, chosen: Option<usize>) -> String {
        let mut s = String::with_capacity(self.head.len() + self.tail.len() + 512);
        s.push_str(&self.head);
        if let (Some(f), Some([x, y])) = (
            self.frame,
            customer.filter(|p| p[0].is_finite() && p[1].is_finite()),
        ) {
            let cx = f.px(x).clamp(PAD / 2.0, WIDTH - PAD / 2.0);
            let cy = f.py(y).clamp(f.top, f.height - PAD / 2.0);
            let c = chosen.map_or("#000", colour);
            let anchor = if cx > WIDTH * 0.7 { "end" } else { "start" };
            let dx = if anchor == "end" { -14.0 } else { 14.0 };
            let _ = write!(
                s,
                "<g class=\"customer\"><circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"9\" fill=\"#fff\" stroke=\"{c}\" stroke-width=\"3\"/>\
                 <path d=\"M{:.1} {cy:.1}h12M{cx:.1} {:.1}v12\" stroke=\"{c}\" stroke-width=\"3\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">this customer</text></g>",
                cx - 6.0,
                cy - 6.0,
                cx + dx,
                cy - 10.0
            );
        }
        s.push_str(&self.tail);
        s
    }
}

/// The smallest box holding every finite sample point and centre, as (x0, x1, y0, y1); None
/// when there is none.
fn finite_bounds(map: &crate::registry::EmbeddingMap) -> Option<(f32, f32, f32, f32)> {
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    let mut any = false;
    let points = map.sample.iter().map(|p| [p[0], p[1]]);
    for [x, y] in points
        .chain(map.centres.iter().copied())
        .filter(|p| p[0].is_finite() && p[1].is_finite())
    {
        any = true;
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    any.then_some((x0, x1, y0, y1))
}

/// The frame and the axes' titles of a picture `height` tall.
fn draw_axes(head: &mut String, height: f32) {
    let _ = write!(
        head,
        "<rect x=\"0.5\" y=\"0.5\" width=\"{}\" height=\"{}\" class=\"frame\"/>\
         <text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"middle\">principal component 1</text>\
         <text x=\"12\" y=\"{}\" class=\"axis\" text-anchor=\"middle\" transform=\"rotate(-90 12 {})\">principal component 2</text>",
        WIDTH - 1.0,
        height - 1.0,
        WIDTH / 2.0,
        height - 8.0,
        height / 2.0,
        height / 2.0
    );
}

/// The held-out customers coloured by segment, then each segment's numbered centre.
fn draw_embedding(head: &mut String, map: &crate::registry::EmbeddingMap, f: &Frame) {
    head.push_str("<g class=\"sample\">");
    for p in &map.sample {
        if p[0].is_finite() && p[1].is_finite() {
            let _ = write!(
                head,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.6\" fill=\"{}\"/>",
                f.px(p[0]),
                f.py(p[1]),
                colour(p[2] as usize)
            );
        }
    }
    head.push_str("</g>");
    for (i, c) in map.centres.iter().enumerate() {
        let (cx, cy) = (f.px(c[0]), f.py(c[1]));
        let _ = write!(
            head,
            "<g class=\"centre\"><circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"11\" fill=\"{}\"/>\
             <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{i}</text></g>",
            colour(i),
            cy + 4.5
        );
    }
}

/// The legend, one line per segment at the top, and `</svg>`: the picture's tail.
fn legend(names: &[&str]) -> String {
    let mut tail = String::new();
    for (i, name) in names.iter().enumerate() {
        let y = 18.0 + i as f32 * 16.0;
        let _ = write!(
            tail,
            "<g class=\"legend\"><circle cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{i}: {}</text></g>",
            PAD,
            y - 4.0,
            colour(i),
            PAD + 10.0,
            y,
            escape(name)
        );
    }
    tail.push_str("</svg>");
    tail
}

/// A small SVG bar chart of a column's reference (grey) and current (blue) shares.
pub fn drift_chart(c: &ColumnDrift) -> String {
    let (w, h, pad) = (360.0, 120.0, 18.0);
    let n = c.labels.len().max(1) as f64;
    let top = c
        .reference_shares
        .iter()
        .chain(&c.current_shares)
        .cloned()
        .fold(0.0, f64::max)
        .max(1e-9);
    let slot = (w - 2.0 * pad) / n;
    let bar = (slot / 2.0 - 1.0).max(1.0);
    let mut out = format!(
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{} reference vs current">"#,
        escape(&c.column)
    );
    for (i, (r, cur)) in c.reference_shares.iter().zip(&c.current_shares).enumerate() {
        let x = pad + slot * i as f64;
        for (k, (v, class)) in [(r, "ref"), (cur, "cur")].into_iter().enumerate() {
            let bh = (h - 2.0 * pad) * v / top;
            out.push_str(&format!(
                r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{bar:.1}" height="{bh:.1}"><title>{}: {} {:.1}%</title></rect>"#,
                x + k as f64 * (bar + 1.0),
                h - pad - bh,
                escape(&c.labels[i]),
                if k == 0 { "reference" } else { "current" },
                100.0 * v
            ));
        }
    }
    let first = c.labels.first().map(String::as_str).unwrap_or("");
    let last = c.labels.last().map(String::as_str).unwrap_or("");
    out.push_str(&format!(
        r#"<text x="{pad}" y="{}" class="axis">{}</text><text x="{}" y="{}" class="axis" text-anchor="end">{}</text></svg>"#,
        h - 4.0,
        escape(first),
        w - pad,
        h - 4.0,
        escape(last)
    ));
    out
}

/// A number in at most four significant digits (a chart's axis label).
fn short(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The k sweep: silhouette (left) and WCSS (right) against k, the chosen k marked.
pub fn k_sweep(scores: &[crate::train::sweep::KScore], chosen: usize) -> String {
    let (w, h, pad) = (270.0f64, 170.0f64, 40.0f64);
    let mut out = format!(
        r#"<svg class="chart sweep" viewBox="0 0 {} {h}" role="img" aria-label="silhouette and WCSS against k">"#,
        2.0 * w
    );
    let (Some(first), Some(last)) = (scores.first(), scores.last()) else {
        out.push_str("</svg>");
        return out;
    };
    let span = (last.k - first.k).max(1) as f64;
    let panels: [(&str, fn(&crate::train::sweep::KScore) -> f64); 2] = [
        ("silhouette (higher is better)", |s| s.silhouette),
        ("WCSS (within-segment spread)", |s| s.wcss),
    ];
    for (p, (title, value)) in panels.iter().enumerate() {
        let x0 = p as f64 * w;
        let values: Vec<f64> = scores.iter().map(value).collect();
        let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let range = (hi - lo).max(1e-12);
        let px = |k: usize| x0 + pad + (w - 2.0 * pad) * (k - first.k) as f64 / span;
        let py = |v: f64| h - pad - (h - 2.0 * pad - 14.0) * (v - lo) / range;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="14" class="axis">{}</text><polyline class="line" points=""#,
            x0 + pad,
            escape(title)
        );
        for (s, v) in scores.iter().zip(&values) {
            let _ = write!(out, "{:.1},{:.1} ", px(s.k), py(*v));
        }
        out.push_str(r#""/>"#);
        // The panel's range on its left edge.
        for v in [lo, hi] {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="end">{}</text>"#,
                x0 + pad - 6.0,
                py(v) + 4.0,
                short(v)
            );
        }
        for (s, v) in scores.iter().zip(&values) {
            let class = if s.k == chosen { "dot chosen" } else { "dot" };
            let _ = write!(
                out,
                r#"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="{}"><title>k = {}: {:.4}</title></circle><text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"#,
                px(s.k),
                py(*v),
                if s.k == chosen { 5 } else { 3 },
                s.k,
                v,
                px(s.k),
                h - pad + 14.0,
                s.k
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::EmbeddingMap;

    #[test]
    fn the_sweep_chart_marks_the_chosen_k() {
        let scores: Vec<crate::train::sweep::KScore> = (2..=8)
            .map(|k| crate::train::sweep::KScore {
                k,
                silhouette: 1.0 / k as f64,
                davies_bouldin: 0.5,
                wcss: 100.0 / k as f64,
            })
            .collect();
        let svg = k_sweep(&scores, 4);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("dot chosen").count(), 2, "one mark per panel");
        assert!(svg.contains("k = 4: 0.2500"));
        assert_eq!(k_sweep(&[], 3), k_sweep(&[], 5));
    }

    #[test]
    fn every_k_the_settings_allow_is_drawn_with_a_customer_anywhere() {
        for k in [1usize, 2, 3, 24, 64] {
            let map = EmbeddingMap {
                centres: (0..k).map(|i| [i as f32, -(i as f32)]).collect(),
                sample: (0..50)
                    .map(|i| [i as f32 * 0.1, 1.0 - i as f32 * 0.05, (i % k) as f32])
                    .collect(),
            };
            let names: Vec<String> = (0..k).map(|i| format!("Segment <{i}>")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let plot = Plot::draw(&names, &map);
            for customer in [[0.0, 0.0], [1e30, -1e30], [-5.0, 7.0]] {
                let svg = plot.render(Some(customer), Some(k - 1));
                assert!(
                    svg.starts_with("<svg") && svg.ends_with("</svg>"),
                    "k = {k}"
                );
                assert!(svg.contains(&format!("{}: Segment &lt;{}&gt;", k - 1, k - 1)));
                assert!(svg.contains("this customer"));
            }
        }
    }
}

/// The segment shares of each retained monitoring bucket, oldest on the left: one stacked
/// bar per bucket (segment colours as on the model page), the training shares as the last,
/// hatched-grey-edged bar, and the atypical share as a line of dots. `buckets`: (start,
/// rows, counts per segment, atypical).
pub fn share_chart(
    buckets: &[(u64, u64, Vec<u64>, u64)],
    reference: &[f64],
    names: &[String],
) -> String {
    let (w, h, pad, top_pad) = (560.0f64, 160.0f64, 24.0f64, 8.0f64);
    let n = buckets.len() + 1;
    let slot = (w - 2.0 * pad) / n as f64;
    let bar = (slot * 0.8).max(1.0);
    let plot_h = h - pad - top_pad;
    let mut out = format!(
        r#"<svg class="chart shares" viewBox="0 0 {w} {h}" role="img" aria-label="segment shares per monitoring bucket, and the training shares">"#
    );
    let mut column = |i: usize, shares: Vec<f64>, label: String, class: &str| {
        let x = pad + slot * i as f64;
        let mut y = h - pad;
        for (s, share) in shares.iter().enumerate() {
            let bh = plot_h * share;
            y -= bh;
            out.push_str(&format!(
                r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{bh:.1}" fill="{}"><title>{}: {} {:.1}%</title></rect>"#,
                colour(s),
                escape(&label),
                escape(names.get(s).map_or("", String::as_str)),
                100.0 * share
            ));
        }
    };
    for (i, (start, rows, counts, _)) in buckets.iter().enumerate() {
        let shares = counts
            .iter()
            .map(|&c| c as f64 / (*rows).max(1) as f64)
            .collect();
        column(i, shares, crate::monitor::format_ms(*start), "bucket");
    }
    column(
        buckets.len(),
        reference.to_vec(),
        "training".into(),
        "training",
    );
    // The atypical share, on a scale of 0–10 % (the expected 1 % is a dashed line).
    let scale = |share: f64| h - pad - plot_h * (share / 0.10).min(1.0);
    out.push_str(&format!(
        r#"<line class="expected" x1="{pad}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"><title>expected atypical share: 1 %</title></line>"#,
        w - pad,
        y = scale(crate::monitor::EXPECTED_ATYPICAL)
    ));
    for (i, (start, rows, _, atypical)) in buckets.iter().enumerate() {
        let share = *atypical as f64 / (*rows).max(1) as f64;
        out.push_str(&format!(
            r#"<circle class="atypical" cx="{:.1}" cy="{:.1}" r="2.5"><title>{}: atypical {:.2}%</title></circle>"#,
            pad + slot * i as f64 + bar / 2.0,
            scale(share),
            escape(&crate::monitor::format_ms(*start)),
            100.0 * share
        ));
    }
    let first = buckets
        .first()
        .map_or(String::new(), |b| crate::monitor::format_ms(b.0));
    out.push_str(&format!(
        r#"<text x="{pad}" y="{}" class="axis">{}</text><text x="{}" y="{}" class="axis" text-anchor="end">training</text></svg>"#,
        h - 6.0,
        escape(&first),
        w - pad,
        h - 6.0
    ));
    out
}
