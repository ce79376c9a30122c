// SPDX-License-Identifier: BSD-2-Clause
/*
 * dashboard.js: polls GET /api/v1/dashboard every 2 s and keeps one card
 * per service up to date in place (no re-render, so nothing jumps), with
 * the last 30 polls drawn as SVG charts, and the rollout's steps, progress
 * and last analysis. Every value from the gateway goes into the page
 * through textContent or an attribute, never as markup.
 * The gateway's JSON is documented in docs/admin-api.md.
 */
"use strict";

(function () {
    const POLL_MS = 2000;
    const TIMEOUT_MS = 5000;
    const HISTORY = 30;
    const SLOTS = ["blue", "green"];
    const SVG_NS = "http://www.w3.org/2000/svg";
    const VIEW_W = 300, VIEW_H = 64, PAD_TOP = 6, PAD_BOTTOM = 2;

    const el = (id) => document.getElementById(id);
    const cards = new Map();        /* service name -> card */
    let fleetSelf = null;           /* this gateway's name in its fleet; null: no fleet */
    let disconnectedSince = null;
    let polling = true;

    /* ---- formatting ---- */

    function setText(node, text) {
        if (node.textContent !== text)
            node.textContent = text;
    }

    function setAttr(node, name, value) {
        if (node.getAttribute(name) !== value)
            node.setAttribute(name, value);
    }

    function fmtRate(v) {
        if (!isFinite(v)) return "–";
        if (v === 0) return "0";
        if (v >= 10000) return (v / 1000).toFixed(0) + "k";
        if (v >= 1000) return (v / 1000).toFixed(1) + "k";
        if (v >= 10) return v.toFixed(0);
        if (v >= 0.1) return v.toFixed(1);
        return v.toFixed(2);
    }

    function fmtPercent(fraction) {
        if (!isFinite(fraction)) return "–";
        const p = fraction * 100;
        if (p === 0) return "0";
        if (p < 0.1) return "<0.1";
        if (p < 10) return p.toFixed(1);
        return p.toFixed(0);
    }

    /* [number, unit] of a latency in ms, 2 or 3 digits (the histograms
     * hold about 2): ms below 1 s, else s */
    function fmtLatency(ms) {
        if (ms === null || ms === undefined || !isFinite(ms)) return ["–", ""];
        if (ms >= 1000) return [(ms / 1000).toFixed(ms >= 10000 ? 1 : 2), "s"];
        if (ms >= 10) return [ms.toFixed(0), "ms"];
        if (ms >= 1) return [ms.toFixed(1), "ms"];
        return [ms.toFixed(2), "ms"];
    }

    /* a count of requests: exact below 10 000, then 12.3k, 123k, 1.2M */
    function fmtCount(n) {
        if (!isFinite(n)) return "–";
        if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
        if (n >= 1e5) return (n / 1000).toFixed(0) + "k";
        if (n >= 1e4) return (n / 1000).toFixed(1) + "k";
        return String(n);
    }

    /* a duration in seconds: tenths below 10 s (steps can be that short),
     * then whole seconds, then minutes */
    function fmtSeconds(s) {
        if (s === null || s === undefined || !isFinite(s) || s < 0) return "–";
        if (s < 10) {
            const t = Math.floor(s * 10) / 10;
            return (Number.isInteger(t) ? String(t) : t.toFixed(1)) + " s";
        }
        if (s < 60) return Math.floor(s) + " s";
        if (s < 3600) {
            const sec = Math.floor(s) % 60;
            const min = Math.floor(s / 60) + " min";
            return sec ? min + " " + String(sec).padStart(2, "0") + " s" : min;
        }
        return fmtUptime(s);
    }

    function fmtUptime(s) {
        if (!isFinite(s) || s < 0) return "–";
        const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
        const m = Math.floor(s / 60) % 60, sec = Math.floor(s) % 60;
        const two = (n) => String(n).padStart(2, "0");
        if (d > 0) return d + "d " + two(h) + "h";
        if (h > 0) return h + "h " + two(m) + "m";
        return m + "m " + two(sec) + "s";
    }

    /* local HH:MM:SS, the same in every locale */
    function fmtClock(date) {
        const two = (n) => String(n).padStart(2, "0");
        return two(date.getHours()) + ":" + two(date.getMinutes()) + ":" + two(date.getSeconds());
    }

    /* the local clock of one of the gateway's ISO 8601 timestamps */
    function fmtStamp(iso) {
        const date = iso ? new Date(iso) : null;
        return date && isFinite(date.getTime()) ? fmtClock(date) : "–";
    }

    /* a figure: number text and a unit span; data-empty when there is none */
    function setFigure(dd, number, unit, tone) {
        let unitNode = dd.querySelector(".unit");
        if (!unitNode) {
            dd.textContent = "";
            dd.appendChild(document.createTextNode(""));
            unitNode = document.createElement("span");
            unitNode.className = "unit";
            dd.appendChild(unitNode);
        }
        if (dd.firstChild.nodeValue !== number)
            dd.firstChild.nodeValue = number;
        setText(unitNode, unit ? " " + unit : "");
        setAttr(dd, "data-empty", number === "–" ? "true" : "false");
        setAttr(dd, "data-tone", tone || "");
    }

    /* ---- cards ---- */

    function cloneTemplate(id) {
        return el(id).content.firstElementChild.cloneNode(true);
    }

    function svgNode(name, attrs) {
        const node = document.createElementNS(SVG_NS, name);
        for (const [k, v] of Object.entries(attrs))
            node.setAttribute(k, v);
        return node;
    }

    function buildChart(figure) {
        const svg = figure.querySelector("svg");
        const chart = {svg, max: figure.querySelector(".chart-max"), area: null, lines: {}};
        svg.appendChild(svgNode("line", {class: "gridline", x1: 0, x2: VIEW_W,
                                          y1: PAD_TOP, y2: PAD_TOP}));
        const mid = PAD_TOP + (VIEW_H - PAD_TOP - PAD_BOTTOM) / 2;
        svg.appendChild(svgNode("line", {class: "gridline", x1: 0, x2: VIEW_W, y1: mid, y2: mid}));
        chart.area = svgNode("path", {class: "area", d: ""});
        svg.appendChild(chart.area);
        for (const slot of SLOTS) {
            chart.lines[slot] = svgNode("path", {class: "line", "data-slot": slot, d: ""});
            svg.appendChild(chart.lines[slot]);
        }
        return chart;
    }

    function createCard(name) {
        const root = cloneTemplate("service-template");
        const card = {
            name, root,
            nameNode: root.querySelector(".svc-name"),
            maintenance: root.querySelector(".badge-maintenance"),
            ready: root.querySelector(".badge-ready"),
            rollout: root.querySelector(".badge-rollout"),
            scaling: root.querySelector(".badge-scaling"),
            scalingText: root.querySelector(".scaling-text"),
            scalingDetail: root.querySelector(".scaling-detail"),
            splitActive: root.querySelector(".split-active"),
            splitCanary: root.querySelector(".split-canary"),
            fillActive: root.querySelector(".split-fill-active"),
            fillCanary: root.querySelector(".split-fill-canary"),
            slots: {},
            charts: {},
            history: [],
            active: SLOTS[0],
        };
        setAttr(root, "data-service", name);
        const slotsBox = root.querySelector(".slots");
        for (const slot of SLOTS) {
            const s = cloneTemplate("slot-template");
            setAttr(s, "data-slot", slot);
            setAttr(s.querySelector(".swatch"), "data-slot", slot);
            setText(s.querySelector(".slot-name"), slot);
            slotsBox.appendChild(s);
            card.slots[slot] = {
                root: s,
                tag: s.querySelector(".slot-tag"),
                pool: s.querySelector(".slot-pool"),
                rps: s.querySelector(".fig-rps"),
                err: s.querySelector(".fig-err"),
                p50: s.querySelector(".fig-p50"),
                p95: s.querySelector(".fig-p95"),
                p99: s.querySelector(".fig-p99"),
                dots: s.querySelector(".dots"),
                summary: s.querySelector(".inst-summary"),
            };
        }
        for (const figure of root.querySelectorAll(".chart"))
            card.charts[figure.dataset.metric] = buildChart(figure);
        card.ro = rolloutView(root);
        return card;
    }

    function errorTone(rate) {
        if (!(rate > 0)) return "";
        return rate >= 0.05 ? "bad" : "warn";
    }

    function updateSlot(view, data, role, pool) {
        setAttr(view.root, "data-active", role === "active" ? "true" : "false");
        setAttr(view.root, "data-role", role);
        setText(view.pool, data.pool);
        setAttr(view.pool, "title", "pool " + data.pool);
        const hasTraffic = data.requests > 0;
        setFigure(view.rps, fmtRate(data.requests_per_s), "");
        if (hasTraffic)
            setFigure(view.err, fmtPercent(data.error_rate), "%", errorTone(data.error_rate));
        else
            setFigure(view.err, "–", "");
        for (const q of ["p50", "p95", "p99"]) {
            const [num, unit] = fmtLatency(data[q + "_ms"]);
            setFigure(view[q], num, unit);
        }
        updateDots(view, pool);
    }

    function instanceTitle(inst) {
        const lines = [inst.addr + ": " + inst.state];
        const facts = ["health " + inst.health, inst.in_flight + " in flight",
                       "weight " + inst.weight];
        lines.push(facts.join(" · "));
        if (inst.requests > 0) {
            const [num, unit] = fmtLatency(inst.p95_ms);
            lines.push(fmtRate(inst.requests_per_s) + " req/s · upstream p95 " + num + " " + unit);
        }
        return lines.join("\n");
    }

    function updateDots(view, pool) {
        const instances = pool ? pool.instances : [];
        const list = view.dots;
        while (list.children.length > instances.length)
            list.lastElementChild.remove();
        while (list.children.length < instances.length) {
            const li = document.createElement("li");
            li.className = "dot";
            list.appendChild(li);
        }
        instances.forEach((inst, i) => {
            const li = list.children[i];
            setAttr(li, "data-state", inst.state);
            const title = instanceTitle(inst);
            setAttr(li, "title", title);
            setAttr(li, "aria-label", title);
        });
        if (!pool) {
            setText(view.summary, "");
            return;
        }
        setText(view.summary, pool.healthy + "/" + instances.length + " healthy");
        setAttr(view.summary, "data-tone", pool.healthy === 0 ? "bad" : "");
    }

    function updateHeader(card, svc) {
        setText(card.nameNode, svc.name);
        setAttr(card.nameNode, "title", svc.name);
        /* gateways before maintenance existed leave the field out: no badge */
        card.maintenance.hidden = svc.maintenance !== true;
        setText(card.ready, svc.ready ? "ready" : "not ready");
        setAttr(card.ready, "data-tone", svc.ready ? "ok" : "bad");
        setText(card.rollout, "rollout: " + svc.rollout.replace(/_/g, " "));
        setAttr(card.rollout, "data-tone", ROLLOUT_TONES[svc.rollout] || "");
        const signal = svc.scaling_signal;
        setText(card.scalingText, signal > 0 ? "scale up ▲" : signal < 0 ? "scale down ▼"
                                                                 : "scale: hold");
        setAttr(card.scaling, "data-tone", signal > 0 ? "warn" : "");
        const detail = scalingDetail(svc.scaling);
        setAttr(card.scaling, "title", SCALING_TITLE + (detail ? "\n" + detail : ""));
        setText(card.scalingDetail, detail ? ": " + detail.replace(/\n/g, "; ") : "");
    }

    const SCALING_TITLE = "scaling signal: +1 scale up, 0 hold, -1 scale down";

    /* the figures behind the scaling signal, one per line, each against its limit */
    function scalingDetail(sc) {
        if (!sc) return "";
        const lim = sc.limits || {};
        const [p95, p95Unit] = fmtLatency(sc.requests > 0 ? sc.p95_ms : null);
        const signal = sc.recommendation;
        const lines = [
            "now " + (signal > 0 ? "+1, scale up" : signal < 0 ? "-1, scale down" : "0, hold") +
                (sc.reason ? ": " + sc.reason : ""),
            "active slot over the last minute: " + sc.requests + " requests",
            "p95 " + p95 + (p95Unit ? " " + p95Unit : "") + " (limit " + lim.max_p95_ms + " ms)",
            "queue " + sc.queue + " (limit " + lim.max_queue + ")",
            "error rate " + (sc.requests > 0 ? fmtPercent(sc.error_rate) + " %" : "–") +
                " (limit " + fmtPercent(lim.max_error_rate) + " %)",
        ];
        return lines.join("\n");
    }

    function updateSplit(card, svc) {
        const w = Math.max(0, Math.min(100, svc.canary_weight));
        setAttr(card.fillActive, "data-slot", svc.active);
        setAttr(card.fillCanary, "data-slot", svc.canary_slot);
        card.fillActive.style.width = (100 - w) + "%";
        card.fillCanary.style.width = w + "%";
        setText(card.splitActive, svc.active + " (active) " + (100 - w) + "%");
        setText(card.splitCanary, w > 0 ? "canary " + svc.canary_slot + " " + w + "%"
                                         : "canary " + w + "%");
    }

    function updateCard(card, svc, poolsByName) {
        updateHeader(card, svc);
        updateSplit(card, svc);
        updateRollout(card, svc.rollout_detail);
        for (const slot of SLOTS) {
            const data = svc.slots[slot];
            const role = slot === svc.active ? "active"
                       : svc.canary_weight > 0 ? "canary" : "standby";
            setText(card.slots[slot].tag, role === "canary" ? "CANARY " + svc.canary_weight + "%"
                                                            : role.toUpperCase());
            updateSlot(card.slots[slot], data, role, poolsByName.get(data.pool));
        }
        const point = {};
        for (const slot of SLOTS) {
            const d = svc.slots[slot];
            point[slot] = {
                rps: d.requests_per_s,
                err: d.requests > 0 ? d.error_rate : null,
                p95: d.p95_ms,
            };
        }
        card.active = svc.active;
        addPoint(card, point);
    }

    /* ---- the rollout ---- */

    const ROLLOUT_STATES = {
        idle: "idle", running: "running", waiting_for_traffic: "waiting for traffic",
        paused: "paused", promoted: "promoted", rolled_back: "rolled back", aborted: "aborted",
    };
    const ROLLOUT_TONES = {
        waiting_for_traffic: "warn", aborted: "warn", rolled_back: "bad", promoted: "ok",
    };
    /* the states in which a rollout owns the split and its clock runs */
    const ROLLOUT_ACTIVE = new Set(["running", "waiting_for_traffic", "paused"]);
    const STEP_STATUS_TEXT = {done: "done", current: "current", todo: "to come",
                              stopped: "stopped here"};

    function sideView(row) {
        return {
            root: row,
            swatch: row.querySelector(".swatch"),
            name: row.querySelector(".side-name"),
            requests: row.querySelector(".side-requests"),
            errors: row.querySelector(".side-errors"),
            p95: row.querySelector(".side-p95"),
        };
    }

    function rolloutView(root) {
        const q = (cls) => root.querySelector(cls);
        return {
            none: q(".rollout-none"), root: q(".rollout"), state: q(".rollout-state"),
            fromSwatch: q(".rollout-from"), fromName: q(".rollout-from-name"),
            toSwatch: q(".rollout-to"), toName: q(".rollout-to-name"),
            started: q(".rollout-started"), leader: q(".rollout-leader"), steps: q(".steps"),
            stepLabel: q(".step-label"), stepTime: q(".step-time"),
            bar: q(".step-bar"), fill: q(".step-fill"),
            verdict: q(".verdict"), when: q(".analysis-when"), reason: q(".analysis-reason"),
            ratio: q(".analysis-ratio"),
            sides: {canary: sideView(q('.side[data-side="canary"]')),
                    baseline: sideView(q('.side[data-side="baseline"]'))},
        };
    }

    /* done, current, to come, or where a rollout that was withdrawn stopped */
    function stepStatus(ro, i) {
        if (ro.state === "promoted" || i < ro.step) return "done";
        if (i > ro.step) return "todo";
        return ROLLOUT_ACTIVE.has(ro.state) ? "current" : "stopped";
    }

    function updateSteps(view, ro) {
        const list = view.steps;
        const steps = ro.steps || [];
        while (list.children.length > steps.length)
            list.lastElementChild.remove();
        while (list.children.length < steps.length) {
            const li = document.createElement("li");
            li.className = "step";
            for (const cls of ["step-marker", "step-weight", "step-status visually-hidden"]) {
                const span = document.createElement("span");
                span.className = cls;
                li.appendChild(span);
            }
            li.firstChild.setAttribute("aria-hidden", "true");
            list.appendChild(li);
        }
        steps.forEach((weight, i) => {
            const li = list.children[i];
            const status = stepStatus(ro, i);
            setAttr(li, "data-status", status);
            setText(li.children[1], weight + "%");
            setText(li.children[2], " " + STEP_STATUS_TEXT[status]);
            setAttr(li, "title", "step " + (i + 1) + " of " + steps.length + ": canary " +
                                 weight + " % · " + STEP_STATUS_TEXT[status]);
        });
    }

    /* the current step's label, and its clock against the interval */
    function updateStepNow(view, ro) {
        const n = ro.steps.length;
        const at = Math.min(ro.step, n - 1);
        const where = "step " + (at + 1) + " of " + n + " (" + ro.steps[at] + "%)";
        let label;
        if (ro.state === "promoted")
            label = "all " + n + " steps passed · " + ro.active + " is active";
        else if (ro.state === "rolled_back")
            label = "rolled back at " + where;
        else if (ro.state === "aborted")
            label = "aborted at " + where;
        else
            label = "step " + (ro.step + 1) + " of " + n + " · canary " + ro.weight + "%";
        setText(view.stepLabel, label);

        const running = ROLLOUT_ACTIVE.has(ro.state) && ro.step_elapsed_s !== null;
        setAttr(view.bar, "data-running", running ? "true" : "false");
        if (!running) {
            setText(view.stepTime, ro.state === "promoted" ? "" : "weight back to 0");
            view.fill.style.width = ro.state === "promoted" ? "100%" : "0%";
            view.bar.removeAttribute("aria-valuenow");
            setAttr(view.bar, "aria-valuetext", label);
            return;
        }
        const elapsed = Math.max(0, ro.step_elapsed_s), interval = ro.step_interval_s;
        const time = fmtSeconds(elapsed) + " of " + fmtSeconds(interval);
        setText(view.stepTime, time);
        const frac = interval > 0 ? Math.min(1, elapsed / interval) : 1;
        view.fill.style.width = (frac * 100).toFixed(1) + "%";
        setAttr(view.bar, "aria-valuemax", String(interval));
        setAttr(view.bar, "aria-valuenow", String(Math.min(elapsed, interval)));
        setAttr(view.bar, "aria-valuetext", time + " in this step");
    }

    function updateSide(side, data, role, slot) {
        setAttr(side.swatch, "data-slot", slot);
        setText(side.name, role + " " + slot);
        const has = data && data.requests > 0;
        setText(side.requests, data ? fmtCount(data.requests) : "–");
        setAttr(side.requests, "title", data ? data.requests + " requests" : "");
        setText(side.errors, has ? fmtPercent(data.error_rate) + " %" : "–");
        setAttr(side.errors, "title", has ? data.errors + " of " + data.requests + " failed" : "");
        setAttr(side.errors, "data-tone", has ? errorTone(data.error_rate) : "");
        const [num, unit] = fmtLatency(has ? data.p95_ms : null);
        setText(side.p95, unit ? num + " " + unit : num);
    }

    function updateAnalysis(view, a, from, to) {
        setAttr(view.verdict, "data-verdict", a ? a.verdict : "");
        setText(view.verdict, a ? a.verdict : "none yet");
        setText(view.when, a ? "at " + fmtStamp(a.at) + " · step " + (a.step + 1) + " (" +
                               a.weight + "%) · over " + fmtSeconds(a.window_s) : "");
        setText(view.reason, a ? a.reason : "The controller judges the canary every second.");
        updateSide(view.sides.canary, a && a.canary, "canary", to);
        updateSide(view.sides.baseline, a && a.baseline, "baseline", from);
        const judged = a && a.canary.requests > 0 && a.baseline.p95_ms > 0;
        const ratio = judged ? a.p95_ratio.toFixed(a.p95_ratio >= 10 ? 1 : 2) + "×" : "–";
        setText(view.ratio, "p95 ratio, canary to baseline: " + ratio);
    }

    function updateRollout(card, ro) {
        const view = card.ro;
        const idle = !ro || ro.state === "idle";
        view.root.hidden = idle;
        view.none.hidden = !idle || !ro;
        if (idle) {
            if (ro)
                setText(view.none, "No rollout" + (ro.steps && ro.steps.length
                    ? " · steps of " + ro.steps.join(", ") + " %, " +
                      fmtSeconds(ro.step_interval_s) + " each" : ""));
            return;
        }
        setAttr(view.root, "data-state", ro.state);
        setText(view.state, ROLLOUT_STATES[ro.state] || ro.state.replace(/_/g, " "));
        setAttr(view.state, "data-tone", ROLLOUT_TONES[ro.state] || "");
        /* once promoted, the canary is the active slot: the rollout went from the other */
        const promoted = ro.state === "promoted";
        const from = promoted ? ro.canary : ro.active, to = promoted ? ro.active : ro.canary;
        setAttr(view.root, "data-to", to);
        setAttr(view.fromSwatch, "data-slot", from);
        setText(view.fromName, from);
        setAttr(view.toSwatch, "data-slot", to);
        setText(view.toName, to);
        setText(view.started, ro.started ? "started " + fmtStamp(ro.started) : "");
        /* in a fleet one gateway judges the rollout, on every gateway's traffic */
        view.leader.hidden = !fleetSelf;
        setText(view.leader, !ro.leader ? "judged by no gateway yet"
            : "judged by " + (ro.leader === fleetSelf ? "this gateway" : ro.leader));
        updateSteps(view, ro);
        if (ro.steps.length)
            updateStepNow(view, ro);
        updateAnalysis(view, ro.last_analysis, from, to);
    }

    function addPoint(card, point) {
        card.history.push(point);
        if (card.history.length > HISTORY)
            card.history.shift();
        drawCharts(card, card.active);
    }

    /* a poll that failed: a gap in every chart, so time stays to scale */
    function addGap() {
        const none = {rps: null, err: null, p95: null};
        for (const card of cards.values())
            addPoint(card, {blue: none, green: none});
    }

    /* ---- charts ---- */

    /* the smallest 1, 2, 2.5 or 5 x 10^k at or above v */
    function niceCeiling(v, floor) {
        if (!(v > floor)) return floor;
        const exp = Math.pow(10, Math.floor(Math.log10(v)));
        for (const m of [1, 2, 2.5, 5, 10])
            if (m * exp >= v) return m * exp;
        return 10 * exp;
    }

    const METRICS = {
        rps: {floor: 1, label: (max) => "max " + fmtRate(max) + "/s"},
        err: {floor: 0.01, label: (max) => "max " + fmtPercent(max) + "%"},
        p95: {floor: 1, label: (max) => { const [n, u] = fmtLatency(max); return "max " + n + " " + u; }},
    };

    function pathFor(values, max) {
        const step = VIEW_W / (HISTORY - 1);
        const offset = HISTORY - values.length;
        const span = VIEW_H - PAD_TOP - PAD_BOTTOM;
        let d = "", pen = false;
        values.forEach((v, i) => {
            if (v === null || v === undefined || !isFinite(v)) {
                pen = false;
                return;
            }
            const x = (offset + i) * step;
            const y = VIEW_H - PAD_BOTTOM - Math.min(v / max, 1) * span;
            d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
            pen = true;
        });
        return d;
    }

    /* the area under one line: each run of values closed down to the baseline */
    function areaFor(values, max) {
        const step = VIEW_W / (HISTORY - 1);
        const offset = HISTORY - values.length;
        const span = VIEW_H - PAD_TOP - PAD_BOTTOM;
        const base = VIEW_H - PAD_BOTTOM;
        let d = "", runStart = null, lastX = 0;
        const close = () => { if (runStart !== null) d += "L" + lastX.toFixed(1) + " " + base + "Z"; };
        values.forEach((v, i) => {
            if (v === null || v === undefined || !isFinite(v)) {
                close();
                runStart = null;
                return;
            }
            const x = (offset + i) * step;
            const y = base - Math.min(v / max, 1) * span;
            if (runStart === null) {
                runStart = x;
                d += "M" + x.toFixed(1) + " " + base + "L" + x.toFixed(1) + " " + y.toFixed(1);
            } else {
                d += "L" + x.toFixed(1) + " " + y.toFixed(1);
            }
            lastX = x;
        });
        close();
        return d;
    }

    function drawCharts(card, active) {
        for (const [metric, spec] of Object.entries(METRICS)) {
            const chart = card.charts[metric];
            const series = {};
            let peak = 0;
            for (const slot of SLOTS) {
                series[slot] = card.history.map((p) => p[slot][metric]);
                for (const v of series[slot])
                    if (v !== null && isFinite(v) && v > peak) peak = v;
            }
            const max = niceCeiling(peak, spec.floor);
            for (const slot of SLOTS) {
                setAttr(chart.lines[slot], "d", pathFor(series[slot], max));
                setAttr(chart.lines[slot], "data-active", slot === active ? "true" : "false");
            }
            /* the active slot on top, with its area */
            if (chart.svg.lastChild !== chart.lines[active])
                chart.svg.appendChild(chart.lines[active]);
            setAttr(chart.area, "data-slot", active);
            setAttr(chart.area, "d", areaFor(series[active], max));
            setText(chart.max, spec.label(peak));
        }
    }

    /* ---- the page ---- */

    function render(doc) {
        setText(el("version"), doc.version);
        setText(el("uptime"), fmtUptime(doc.uptime_s));
        setText(el("window"), "last " + doc.window_s + " s");
        /* gateways without a fleet (or before fleets existed) send null or nothing */
        fleetSelf = doc.fleet ? doc.fleet.gateway : null;
        el("fleet-item").hidden = !doc.fleet;
        if (doc.fleet) {
            setText(el("fleet"), doc.fleet.gateways + (doc.fleet.gateways === 1 ? " gateway"
                                                                                : " gateways"));
            setAttr(el("fleet"), "title", "this gateway: " + doc.fleet.gateway);
        }
        el("signout").hidden = doc.auth !== "token";

        const poolsByName = new Map(doc.pools.map((p) => [p.name, p]));
        const box = el("services");
        const seen = new Set();
        doc.services.forEach((svc, i) => {
            seen.add(svc.name);
            let card = cards.get(svc.name);
            if (!card) {
                card = createCard(svc.name);
                cards.set(svc.name, card);
            }
            updateCard(card, svc, poolsByName);
            if (box.children[i] !== card.root)
                box.insertBefore(card.root, box.children[i] || null);
        });
        for (const [name, card] of cards)
            if (!seen.has(name)) {
                card.root.remove();
                cards.delete(name);
            }
        el("empty").hidden = doc.services.length > 0;
    }

    function setConnection(state, text) {
        const conn = el("conn");
        setAttr(conn, "data-state", state);
        setText(el("conn-text"), text);
        el("services").classList.toggle("stale", state !== "live");
    }

    function connected() {
        disconnectedSince = null;
        setConnection("live", "live · updated " + fmtClock(new Date()));
    }

    function disconnected(why) {
        if (disconnectedSince === null)
            disconnectedSince = new Date();
        addGap();
        setConnection("down", "disconnected since " + fmtClock(disconnectedSince) +
                              " · retrying every " + POLL_MS / 1000 + " s");
        el("conn").title = String(why);
    }

    /* The cookie's token was refused (rotated away): polling again would
     * only fill the security log, so stop and offer to sign in again. */
    function signedOut() {
        polling = false;
        setConnection("signed-out", "signed out");
        const notice = el("notice");
        notice.textContent = "The gateway no longer accepts this session's token. ";
        const link = document.createElement("a");
        link.href = "/";
        link.textContent = "Sign in again";
        notice.appendChild(link);
        notice.hidden = false;
    }

    async function poll() {
        const ctrl = new AbortController();
        const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
        try {
            const resp = await fetch("/api/v1/dashboard", {
                cache: "no-store", credentials: "same-origin", signal: ctrl.signal,
                headers: {"Accept": "application/json"},
            });
            if (resp.status === 401) {
                signedOut();
                return;
            }
            if (!resp.ok)
                throw new Error("the gateway answered " + resp.status);
            render(await resp.json());
            connected();
        } catch (e) {
            disconnected(e && e.name === "AbortError" ? "no answer within 5 s" : e);
        } finally {
            clearTimeout(timer);
            if (polling)
                setTimeout(poll, POLL_MS);
        }
    }

    poll();
})();
