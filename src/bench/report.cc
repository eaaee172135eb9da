#include "bench/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/error.h"

namespace inferd::bench {

namespace {

std::string pct_name(double p) {
  if (p == 50) return "P50";
  return "P" + fmt::format("{:g}", p);
}

void line(std::string& out, const std::string& name, const std::string& value) {
  out += fmt::format("{:<42}{:>12}\n", name, value);
}

void section(std::string& out, const std::string& title) {
  const int width = 54;
  const int pad = std::max(0, width - int(title.size()) - 2);
  out += std::string(size_t(pad / 2), '-') + " " + title + " " +
         std::string(size_t(pad - pad / 2), '-') + "\n";
}

void latency_section(std::string& out, const std::string& title, const std::string& abbr,
                     const Summary& s) {
  section(out, title);
  if (s.count == 0) {
    line(out, abbr + " (ms):", "n/a");
    return;
  }
  line(out, "Mean " + abbr + " (ms):", fmt::format("{:.2f}", s.mean));
  for (const auto& [p, v] : s.percentiles)
    line(out, pct_name(p) + " " + abbr + " (ms):", fmt::format("{:.2f}", v));
  line(out, "Max " + abbr + " (ms):", fmt::format("{:.2f}", s.max));
}

nlohmann::json summary_json(const Summary& s) {
  nlohmann::json j;
  j["count"] = s.count;
  j["mean"] = s.mean;
  j["std"] = s.stddev;
  j["min"] = s.min;
  j["max"] = s.max;
  for (const auto& [p, v] : s.percentiles) j[fmt::format("p{:g}", p)] = v;
  return j;
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

// About five round ticks covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / 5.0;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::floor(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(v);
  return t;
}

std::string tick_label(double v) {
  if (std::fabs(v) >= 1000) return fmt::format("{:.0f}", v);
  if (std::fabs(v - std::round(v)) < 1e-9) return fmt::format("{:.0f}", v);
  return fmt::format("{:g}", v);
}

}  // namespace

std::string format_rate(double rate) {
  if (!std::isfinite(rate)) return "inf";
  return fmt::format("{:g}", rate);
}

std::string format_report(const BenchMetrics& m, const MetricOptions& opts) {
  std::string out;
  out += std::string(15, '=') + " Serving Benchmark Result " + std::string(13, '=') + "\n";
  line(out, "Successful requests:", fmt::format("{}", m.completed));
  line(out, "Failed requests:", fmt::format("{}", m.failed));
  line(out, "Request rate (asked, req/s):", format_rate(m.request_rate));
  line(out, "Max concurrency:",
       m.max_concurrency > 0 ? fmt::format("{}", m.max_concurrency) : std::string("unlimited"));
  line(out, "Peak requests in flight:", fmt::format("{}", m.peak_in_flight));
  line(out, "Benchmark duration (s):", fmt::format("{:.2f}", m.duration_s));
  line(out, "Total input tokens:", fmt::format("{}", m.total_input_tokens));
  line(out, "Total generated tokens:", fmt::format("{}", m.total_output_tokens));
  if (m.completed > 0 && m.usage_reported < m.completed)
    line(out,
         "  (counted from chunks, no usage):", fmt::format("{}", m.completed - m.usage_reported));
  if (auto h = m.prefix_cache_hit_rate())
    line(out, "Prefix cache hit rate (%):",
         fmt::format("{:.2f} ({} of {} prompt tokens)", *h * 100, m.cached_tokens,
                     m.cached_prompt_tokens));
  line(out, "Request throughput (req/s):", fmt::format("{:.2f}", m.request_throughput));
  line(out, "Input token throughput (tok/s):", fmt::format("{:.2f}", m.input_throughput));
  line(out, "Output token throughput (tok/s):", fmt::format("{:.2f}", m.output_throughput));
  line(out, "Total token throughput (tok/s):", fmt::format("{:.2f}", m.total_throughput));
  if (m.goodput) {
    std::string slo;
    if (opts.slo_ttft_ms) slo += fmt::format(" TTFT<={:g}ms", *opts.slo_ttft_ms);
    if (opts.slo_tpot_ms) slo += fmt::format(" TPOT<={:g}ms", *opts.slo_tpot_ms);
    if (opts.slo_e2e_ms) slo += fmt::format(" E2E<={:g}ms", *opts.slo_e2e_ms);
    line(out, "Request goodput (req/s):", fmt::format("{:.2f}", *m.goodput));
    line(out, "  good requests (" + slo.substr(1) + "):", fmt::format("{}", m.good_requests));
  }
  latency_section(out, "Time to First Token", "TTFT", m.ttft_ms);
  latency_section(out, "Time per Output Token (excl. 1st token)", "TPOT", m.tpot_ms);
  if (m.split_long) {
    latency_section(out, "TPOT, short prompts", "Short TPOT", m.short_tpot_ms);
    latency_section(out, fmt::format("TPOT, long prompts ({} requests)", m.long_completed),
                    "Long TPOT", m.long_tpot_ms);
  }
  latency_section(out, "Inter-token Latency", "ITL", m.itl_ms);
  latency_section(out, "End-to-end Latency", "E2E", m.e2e_ms);
  if (!m.errors.empty()) {
    section(out, "Errors");
    for (const auto& [k, n] : m.errors) line(out, k + ":", fmt::format("{}", n));
  }
  out += std::string(54, '=') + "\n";
  return out;
}

std::string format_sweep_table(const std::vector<BenchMetrics>& runs, const MetricOptions& opts) {
  const double hi = opts.percentiles.empty() ? 99 : opts.percentiles.back();
  const double lo = opts.percentiles.empty() ? 50 : opts.percentiles.front();
  std::string out =
      fmt::format("{:>8} {:>8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}{}\n", "rate",
                  "req/s", "out tok/s", "total tok/s", fmt::format("TTFT {}", pct_name(lo)),
                  fmt::format("TTFT {}", pct_name(hi)), fmt::format("TPOT {}", pct_name(lo)),
                  fmt::format("TPOT {}", pct_name(hi)), fmt::format("ITL {}", pct_name(hi)),
                  fmt::format("E2E {}", pct_name(hi)), "errors", opts.has_slo() ? "  goodput" : "");
  for (const auto& m : runs) {
    out += fmt::format(
        "{:>8} {:>8.2f} {:>9.1f} {:>10.1f} {:>9.1f} {:>9.1f} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.1f} "
        "{:>7}{}\n",
        format_rate(m.request_rate), m.request_throughput, m.output_throughput, m.total_throughput,
        m.ttft_ms.at(lo), m.ttft_ms.at(hi), m.tpot_ms.at(lo), m.tpot_ms.at(hi), m.itl_ms.at(hi),
        m.e2e_ms.at(hi), m.failed, m.goodput ? fmt::format("  {:>7.2f}", *m.goodput) : "");
  }
  out += "(latencies in ms)\n";
  return out;
}

nlohmann::json metrics_to_json(const BenchMetrics& m) {
  nlohmann::json j;
  j["request_rate"] =
      std::isfinite(m.request_rate) ? nlohmann::json(m.request_rate) : nlohmann::json("inf");
  j["max_concurrency"] = m.max_concurrency;
  j["peak_in_flight"] = m.peak_in_flight;
  j["num_requests"] = m.num_requests;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["errors"] = m.errors;
  j["duration_s"] = m.duration_s;
  j["total_input_tokens"] = m.total_input_tokens;
  j["total_output_tokens"] = m.total_output_tokens;
  j["usage_reported"] = m.usage_reported;
  if (auto h = m.prefix_cache_hit_rate()) {
    j["prefix_cache_hit_rate"] = *h;
    j["cached_tokens"] = m.cached_tokens;
  }
  j["request_throughput"] = m.request_throughput;
  j["input_throughput"] = m.input_throughput;
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_throughput;
  if (m.goodput) {
    j["request_goodput"] = *m.goodput;
    j["good_requests"] = m.good_requests;
  }
  j["ttft_ms"] = summary_json(m.ttft_ms);
  j["tpot_ms"] = summary_json(m.tpot_ms);
  if (m.split_long) {
    j["short_tpot_ms"] = summary_json(m.short_tpot_ms);
    j["long_tpot_ms"] = summary_json(m.long_tpot_ms);
    j["long_completed"] = m.long_completed;
  }
  j["itl_ms"] = summary_json(m.itl_ms);
  j["e2e_ms"] = summary_json(m.e2e_ms);
  return j;
}

nlohmann::json run_to_json(const RunResult& run, const BenchMetrics& m) {
  nlohmann::json j;
  j["metrics"] = metrics_to_json(m);
  nlohmann::json reqs = nlohmann::json::array();
  for (const RequestResult& r : run.requests) {
    nlohmann::json q;
    q["index"] = r.index;
    q["success"] = r.success;
    if (!r.success) {
      q["error_kind"] = r.error_kind;
      q["error"] = r.error;
    }
    if (r.http_status) q["http_status"] = r.http_status;
    q["start_ms"] = r.start_s * 1e3;
    q["prompt_tokens"] = r.prompt_tokens;
    q["expected_output_tokens"] = r.expected_output;
    q["output_tokens"] = r.output_tokens;
    q["usage_reported"] = r.usage_reported;
    if (r.cached_tokens >= 0) q["cached_tokens"] = r.cached_tokens;
    q["chunks"] = r.chunks;
    if (r.success) {
      q["ttft_ms"] = r.ttft_s * 1e3;
      q["e2e_ms"] = r.e2e_s * 1e3;
      if (auto t = r.tpot_s()) q["tpot_ms"] = *t * 1e3;
    }
    nlohmann::json itl = nlohmann::json::array();
    for (double g : r.itl_s) itl.push_back(g * 1e3);
    q["itl_ms"] = std::move(itl);
    reqs.push_back(std::move(q));
  }
  j["requests"] = std::move(reqs);
  return j;
}

namespace {

// The sweep chart's layout: three panels side by side.
constexpr int kPanelW = 400, kPanelH = 320, kMarginL = 70, kMarginR = 20, kMarginT = 60,
              kMarginB = 70;
const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b"};

// One latency against throughput.
struct SweepPanel {
  const char* name;
  const Summary BenchMetrics::*field;
};

// A panel's plot area (x0..x1 left to right, y0 bottom, y1 top) and its axis ranges.
struct PanelFrame {
  int x0, x1, y0, y1;
  double xr, yr;
  double x(double v) const { return x0 + (x1 - x0) * v / xr; }
  double y(double v) const { return y0 - (y0 - y1) * v / yr; }
};

// The panel's title, grid lines with tick labels, frame and x-axis label.
void render_panel_axes(std::string& s, const PanelFrame& f, const char* name,
                       const std::vector<double>& xt, const std::vector<double>& yt) {
  s += fmt::format(
      "<g>\n<text x=\"{}\" y=\"{}\" font-size=\"14\" text-anchor=\"middle\">{}"
      "</text>\n",
      (f.x0 + f.x1) / 2, f.y1 - 10, xml_escape(name));
  for (double t : yt) {
    s += fmt::format(
        "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n"
        "<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n",
        f.x0, f.y(t), f.x1, f.y(t), f.x0 - 5, f.y(t) + 4, tick_label(t));
  }
  for (double t : xt) {
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#ddd\"/>\n"
        "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
        f.x(t), f.y0, f.x(t), f.y1, f.x(t), f.y0 + 16, tick_label(t));
  }
  s += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n", f.x0,
      f.y1, f.x1 - f.x0, f.y0 - f.y1);
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">output tokens/s</text>\n",
      (f.x0 + f.x1) / 2, f.y0 + 36);
}

// Percentile `k`'s line over the runs, its points (with a tooltip each) and its legend entry.
void render_panel_series(std::string& s, const PanelFrame& f, const SweepPanel& panel,
                         const std::vector<const BenchMetrics*>& pts, const MetricOptions& opts,
                         size_t k) {
  const double p = opts.percentiles[k];
  const char* color = kColors[k % 6];
  std::string poly;
  for (const auto* m : pts)
    poly += fmt::format("{:.1f},{:.1f} ", f.x(m->output_throughput), f.y((m->*panel.field).at(p)));
  if (!poly.empty()) poly.pop_back();
  s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                   poly, color);
  for (const auto* m : pts) {
    s += fmt::format(
        "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"><title>rate {}: {} {} = "
        "{:.2f} ms at {:.1f} tok/s</title></circle>\n",
        f.x(m->output_throughput), f.y((m->*panel.field).at(p)), color,
        format_rate(m->request_rate), pct_name(p), xml_escape(panel.name), (m->*panel.field).at(p),
        m->output_throughput);
  }
  // Legend inside the panel, top left.
  s += fmt::format(
      "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>"
      "<text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>\n",
      f.x0 + 8, f.y1 + 14 + 14 * int(k), f.x0 + 26, f.y1 + 14 + 14 * int(k), color, f.x0 + 30,
      f.y1 + 18 + 14 * int(k), pct_name(p));
}

// Panel `pi` (0, 1, 2 from the left): its axes, a line per percentile, and request-rate labels
// next to the highest percentile's points.
void render_sweep_panel(std::string& s, int pi, const SweepPanel& panel,
                        const std::vector<const BenchMetrics*>& pts, const std::vector<double>& xt,
                        const MetricOptions& opts) {
  double ymax = 0;
  for (const auto* m : pts)
    for (const auto& [p, v] : (m->*panel.field).percentiles) ymax = std::max(ymax, v);
  const std::vector<double> yt = nice_ticks(0, ymax > 0 ? ymax * 1.05 : 1);
  const PanelFrame f{pi * kPanelW + kMarginL,       (pi + 1) * kPanelW - kMarginR,
                     kMarginT + kPanelH - 20,       kMarginT,
                     xt.back() > 0 ? xt.back() : 1, yt.back() > 0 ? yt.back() : 1};
  render_panel_axes(s, f, panel.name, xt, yt);
  for (size_t k = 0; k < opts.percentiles.size(); ++k)
    render_panel_series(s, f, panel, pts, opts, k);
  if (!opts.percentiles.empty()) {
    const double p = opts.percentiles.back();
    for (const auto* m : pts)
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" fill=\"#555\">{}</text>\n",
                       f.x(m->output_throughput) + 5, f.y((m->*panel.field).at(p)) - 6,
                       xml_escape(format_rate(m->request_rate) + " req/s"));
  }
  s += "</g>\n";
}

}  // namespace

std::string render_sweep_svg(const std::vector<BenchMetrics>& runs, const MetricOptions& opts,
                             const std::string& title) {
  const int width = 3 * kPanelW, height = kPanelH + kMarginT + kMarginB + 30;
  std::string s;
  s += fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" font-family=\"sans-serif\">\n",
      width, height, width, height);
  s += fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"white\"/>\n", width,
                   height);
  s += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n",
                   width / 2, xml_escape(title));

  // Runs ordered by throughput so that lines go left to right.
  std::vector<const BenchMetrics*> pts;
  for (const auto& m : runs) pts.push_back(&m);
  std::sort(pts.begin(), pts.end(), [](const BenchMetrics* a, const BenchMetrics* b) {
    return a->output_throughput < b->output_throughput;
  });
  double xmax = 0;
  for (const auto* m : pts) xmax = std::max(xmax, m->output_throughput);
  const std::vector<double> xt = nice_ticks(0, xmax > 0 ? xmax * 1.05 : 1);

  const SweepPanel panels[3] = {{"TTFT (ms)", &BenchMetrics::ttft_ms},
                                {"TPOT (ms)", &BenchMetrics::tpot_ms},
                                {"E2E latency (ms)", &BenchMetrics::e2e_ms}};
  for (int pi = 0; pi < 3; ++pi) render_sweep_panel(s, pi, panels[pi], pts, xt, opts);
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#555\" text-anchor=\"middle\">each point "
      "is one run, labelled with its requested rate; TPOT = (e2e - ttft) / (output tokens - "
      "1)</text>\n",
      width / 2, height - 12);
  s += "</svg>\n";
  return s;
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail("cannot open '{}' for writing", path);
  f << text;
  f.close();
  if (!f) fail("cannot write '{}'", path);
}

}  // namespace inferd::bench
