// The run page's live figures: server-sent events from /runs/<id>/events update the
// data-count, data-rate, data-eta, data-funnel and data-state elements, the buttons that
// fit the state, and a chart of the send rate. No inline script: the page's CSP forbids it.
(function () {
  "use strict";

  function text(el, value) {
    if (el && el.textContent !== String(value)) el.textContent = String(value);
  }

  // Two lines over wall-clock time, each on its own scale: messages/s (blue) and
  // messages delivered so far (green, as receipts arrive).
  function drawChart(canvas, history, deliveries) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    const rates = [];
    for (let i = 1; i < history.length; i++) {
      const [t0, s0, f0] = history[i - 1], [t1, s1, f1] = history[i];
      rates.push([t1, t1 > t0 ? (s1 + f1 - s0 - f0) / (t1 - t0) : 0]);
    }
    const points = rates.concat(deliveries);
    if (points.length < 2) return;
    const tMin = Math.min(...points.map((p) => p[0]));
    const tMax = Math.max(...points.map((p) => p[0]));
    const x = (t) => (tMax > tMin ? ((t - tMin) / (tMax - tMin)) * (w - 10) + 5 : 5);
    function line(series, color, label, row) {
      if (series.length < 1) return;
      const top = Math.max(1, ...series.map((p) => p[1]));
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      series.forEach(([t, v], i) => {
        const y = h - 5 - (v / top) * (h - 30);
        if (i === 0) ctx.moveTo(x(t), y); else ctx.lineTo(x(t), y);
      });
      ctx.stroke();
      ctx.fillStyle = color;
      ctx.fillText(`${label}: up to ${top.toFixed(0)}`, 5, 12 * row);
    }
    line(rates, "#2563eb", "messages/s", 1);
    line(deliveries, "#15803d", "delivered", 2);
  }

  function update(run, status) {
    run.dataset.state = status.state;
    text(run.querySelector('[data-field="state"]'), status.state);
    for (const [name, value] of Object.entries(status.counts)) {
      text(run.querySelector(`[data-count="${name}"]`), value);
    }
    for (const [name, value] of Object.entries(status.funnel)) {
      text(run.querySelector(`[data-funnel="${name}"]`), value);
    }
    const rate = run.querySelector("[data-rate]");
    if (rate) { rate.dataset.rate = status.rate; text(rate, status.rate); }
    const eta = run.querySelector("[data-eta]");
    if (eta) {
      eta.dataset.eta = status.eta === null ? "" : status.eta;
      text(eta, status.eta === null ? "–" : status.eta);
    }
    const error = run.querySelector('[data-field="error"]');
    if (error) { text(error, status.error || ""); error.hidden = !status.error; }
    const notices = run.querySelector('[data-field="notices"]');
    if (notices && notices.children.length !== status.notices.length) {
      notices.replaceChildren(...status.notices.map((n) => {
        const li = document.createElement("li");
        li.textContent = n;
        return li;
      }));
    }
    for (const button of run.querySelectorAll("button[data-when]")) {
      button.disabled = !button.dataset.when.split(" ").includes(status.state);
    }
    const canvas = document.getElementById("chart");
    if (canvas) drawChart(canvas, status.history || [], status.deliveries || []);
  }

  function watch() {
    const run = document.getElementById("run");
    if (!run || !window.EventSource) return;
    const source = new EventSource(`/runs/${encodeURIComponent(run.dataset.run)}/events`);
    source.onmessage = (event) => update(run, JSON.parse(event.data));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();
