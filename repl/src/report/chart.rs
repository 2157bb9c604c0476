//! The run page's lag chart: one panel per CloudWatch metric the run read (slot lag, replica
//! lag, WAL generation), on one time axis from the run's start, with the fence, the promotion
//! and the route switch drawn across every panel. SVG from `plotters`; the text is laid out by
//! whatever shows it (no font backend).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{CHARTED, Marker, Series};
use godwit_engine::clock::Millis;

/// How a metric is shown: its title, the unit its values are divided into, the unit's name.
fn scale(metric: &str, max: f64) -> (&'static str, f64, &'static str) {
    const MIB: f64 = 1024.0 * 1024.0;
    match metric {
        "OldestReplicationSlotLag" if max >= 1024.0 * MIB => ("slot lag", 1024.0 * MIB, "GiB"),
        "OldestReplicationSlotLag" => ("slot lag", MIB, "MiB"),
        "RDSToAuroraPostgreSQLReplicaLag" => ("replica lag", 1.0, "s"),
        "TransactionLogsGeneration" => ("WAL generation", MIB, "MiB/s"),
        _ => ("", 1.0, ""),
    }
}

/// The time axis' unit for a span of `span_ms`: seconds, minutes or hours.
fn time_unit(span_ms: Millis) -> (f64, &'static str) {
    if span_ms > 3 * 3_600_000 {
        (3_600_000.0, "h")
    } else if span_ms > 3 * 60_000 {
        (60_000.0, "min")
    } else {
        (1_000.0, "s")
    }
}

/// Colour of the `i`-th line in a panel (source and target of one metric).
const COLOURS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

/// The chart as an SVG document, `None` when the run read no charted series. `start`: the
/// run's start, time zero of the axis.
pub fn lag_chart(series: &[Series], markers: &[Marker], start: Millis) -> Option<String> {
    let panels: Vec<(&str, Vec<&Series>)> = CHARTED
        .iter()
        .map(|m| {
            (
                *m,
                series.iter().filter(|s| s.metric == *m).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    if panels.is_empty() {
        return None;
    }
    let times = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(markers.iter().map(|m| m.at));
    let (lo, hi) = times.fold((Millis::MAX, Millis::MIN), |(lo, hi), t| {
        (lo.min(t), hi.max(t))
    });
    let lo = lo.min(start);
    let (unit, unit_name) = time_unit(hi - lo);
    let x = |t: Millis| (t - start) as f64 / unit;
    let (x0, x1) = (x(lo), x(hi).max(x(lo) + 1e-3));

    let mut svg = String::new();
    {
        let height = 210 * panels.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (960, height)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let areas = root.split_evenly((panels.len(), 1));
        for ((metric, lines), area) in panels.iter().zip(areas.iter()) {
            let max = lines
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .fold(0.0f64, f64::max);
            let (title, div, unit_y) = scale(metric, max);
            let y1 = (max / div * 1.1).max(1e-3);
            let y0 = lines
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1 / div))
                .fold(0.0f64, f64::min);
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{title} ({metric})"), ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(64)
                .build_cartesian_2d(x0..x1, y0..y1)
                .ok()?;
            chart
                .configure_mesh()
                .x_desc(format!("{unit_name} since the run's start"))
                .y_desc(unit_y)
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .ok()?;
            for (i, s) in lines.iter().enumerate() {
                let colour = COLOURS[i % COLOURS.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().map(|(t, v)| (x(*t), v / div)),
                        colour.stroke_width(2),
                    ))
                    .ok()?
                    .label(s.of.clone())
                    .legend(move |(lx, ly)| {
                        PathElement::new(vec![(lx, ly), (lx + 16, ly)], colour.stroke_width(2))
                    });
            }
            for (i, m) in markers.iter().enumerate() {
                // Moments minutes apart on a day-long axis: their labels step down.
                let label_y = y1 - (y1 - y0) * 0.09 * i as f64;
                let style = RGBColor(90, 90, 90).stroke_width(1);
                chart
                    .draw_series(LineSeries::new(vec![(x(m.at), y0), (x(m.at), y1)], style))
                    .ok()?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        m.label.to_string(),
                        (x(m.at), label_y),
                        ("sans-serif", 12)
                            .into_font()
                            .color(&RGBColor(60, 60, 60))
                            // Left of the line: the last moments sit at the axis' end.
                            .pos(Pos::new(HPos::Right, VPos::Top)),
                    )))
                    .ok()?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .ok()?;
        }
        root.present().ok()?;
    }
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_panel_per_metric_read_with_the_markers_on_each() {
        let t0 = 1_767_225_600_000;
        let series = vec![
            Series {
                metric: "OldestReplicationSlotLag".into(),
                of: "orders-db".into(),
                points: (0..60)
                    .map(|i| (t0 + i * 60_000, (i * 1_000_000) as f64))
                    .collect(),
            },
            Series {
                metric: "RDSToAuroraPostgreSQLReplicaLag".into(),
                of: "orders-db-aurora".into(),
                points: (0..60).map(|i| (t0 + i * 60_000, 0.5)).collect(),
            },
        ];
        let markers = vec![Marker {
            label: "fence",
            at: t0 + 50 * 60_000,
        }];
        let svg = lag_chart(&series, &markers, t0).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(
            svg.contains("slot lag (OldestReplicationSlotLag)"),
            "the slot panel"
        );
        assert!(svg.contains("replica lag (RDSToAuroraPostgreSQLReplicaLag)"));
        assert!(
            !svg.contains("TransactionLogsGeneration"),
            "no panel for a metric not read"
        );
        // plotters writes a text's content on its own line.
        let texts = |t: &str| svg.lines().filter(|l| l.trim() == t).count();
        assert_eq!(texts("fence"), 2, "the fence on both panels");
        assert!(
            svg.contains("orders-db-aurora"),
            "each line names whose series it is"
        );
        assert!(lag_chart(&[], &markers, t0).is_none());
    }
}
