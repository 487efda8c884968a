/* mpcomm report explorer: draws the run's trace and steps through it.
   Self-contained: no libraries, nothing fetched. See explorer.rs for the
   data block's layout. */
(function () {
  "use strict";
  var root = document.getElementById("explorer");
  var dataEl = document.getElementById("explorer-data");
  if (!root || !dataEl) return;
  var D = JSON.parse(dataEl.textContent);
  if (!D || !D.ev || D.ev.length === 0) return;
  if (/compact/.test(location.hash)) document.body.classList.add("compact");

  var SEND = 0, ARRIVE = 1, WAIT = 2, DELIVER = 3;
  var EV = D.ev, MS = D.msgs, PEERS = D.peers, N = PEERS.length, NM = MS.length;
  var lane = {}; // member id -> lane index
  PEERS.forEach(function (p, i) { lane[p.id] = i; });
  var NL = N;
  function laneOf(id) {
    if (!(id in lane)) { lane[id] = NL; PEERS.push({ id: id, name: "peer " + id, region: "", colour: colour(id) }); NL++; }
    return lane[id];
  }
  function colour(id) { var p = D.palette || ["#0072B2"]; return p[id % p.length]; }

  // Per message and lane: the index of its send/arrival, and of its delivery.
  var inAt = [], outAt = [], sendAt = new Int32Array(NM).fill(-1);
  EV.forEach(function (e) { laneOf(e[1]); });
  for (var l = 0; l < NL; l++) { inAt.push(new Int32Array(NM).fill(-1)); outAt.push(new Int32Array(NM).fill(-1)); }
  EV.forEach(function (e, i) {
    var L = lane[e[1]], m = e[3];
    if (e[2] === SEND) { sendAt[m] = i; if (inAt[L][m] < 0) inAt[L][m] = i; }
    else if (e[2] === ARRIVE) { if (inAt[L][m] < 0) inAt[L][m] = i; }
    else if (e[2] === DELIVER) { if (outAt[L][m] < 0) outAt[L][m] = i; }
  });
  var T_END = EV[EV.length - 1][0];

  // Hold-back bars, stacked per lane so that overlapping waits do not hide
  // each other: greedy slots by arrival time.
  var SLOTS = 7;
  var bars = []; // [lane, msg, tIn, tOut (or T_END if never), slot]
  for (var L2 = 0; L2 < NL; L2++) {
    var held = [];
    for (var m = 0; m < NM; m++) {
      if (inAt[L2][m] >= 0) held.push([L2, m, EV[inAt[L2][m]][0], outAt[L2][m] >= 0 ? EV[outAt[L2][m]][0] : T_END, 0]);
    }
    held.sort(function (a, b) { return a[2] - b[2]; });
    var ends = [];
    held.forEach(function (b) {
      var s = 0;
      while (s < ends.length && ends[s] > b[2]) s++;
      if (s >= SLOTS) s = SLOTS - 1;
      ends[s] = b[3];
      b[4] = s;
      bars.push(b);
    });
  }
  bars.sort(function (a, b) { return a[2] - b[2]; });

  // ---- names and text ----
  // Names and sentences in the words of the core (trace.rs).
  function name(m) {
    var r = MS[m];
    if (r[3] === 1) return "the end-of-stream marker of " + r[0];
    if (r[3] === 2) return "control record " + r[0] + ":" + r[1];
    return r[0] + ":" + r[1];
  }
  function list(ids) {
    if (!ids.length) return "nobody";
    if (ids.length === 1) return String(ids[0]);
    return ids.slice(0, -1).join(", ") + " and " + ids[ids.length - 1];
  }
  function why(i) {
    var w = D.waits[EV[i][5]], m = EV[i][3];
    if (w[2] != null) return w[2];
    var ids = w[0], one = ids.length === 1, s = MS[m][2];
    var could = ids.length > 2 ? "any of them" : one ? "it" : "either";
    return name(m) + " (stamp " + s + ") waits for " + list(ids) + ": " + (one ? "it has" : "they have") +
      " not yet acknowledged stamp " + s + " or sent anything stamped later, so " + could +
      " could still send a message that sorts first";
  }
  function ms(t) { return (t / 1000).toFixed(t < 10000 ? 2 : 1) + " ms"; }
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; }); }
  function ordinal(n) { var s = ["th", "st", "nd", "rd"], v = n % 100; return n + (s[(v - 20) % 10] || s[v] || s[0]); }
  var VERB = ["sent", "received", "waits:", "delivered"];
  function describe(i) {
    var e = EV[i], p = PEERS[lane[e[1]]].name, m = name(e[3]);
    if (e[2] === WAIT) return p + ": " + why(i);
    return p + " " + VERB[e[2]] + " " + m + " (stamp " + MS[e[3]][2] + "); its clock is now " + e[4];
  }

  // ---- state ----
  var cur = 0, followed = -1, showRound = false, playing = null;
  var view0 = 0, view1 = T_END || 1;
  var W = 800;
  var LEFT = 118, RIGHT = 12, TOP = 26, LH = 64, BOTTOM = 8;
  var H = TOP + NL * LH + BOTTOM;
  var host = document.getElementById("ex-diagram");
  var slider = document.getElementById("ex-slider");
  slider.max = String(EV.length - 1);
  var statusEl = document.getElementById("ex-status");
  var panels = document.getElementById("ex-panels");
  var followEl = document.getElementById("ex-follow");
  var roundEl = document.getElementById("ex-round");

  // A long run starts zoomed in on its first part: about 60 deliveries per
  // lane fit a laptop's width.
  (function initialView() {
    var dl = 0, t = T_END;
    for (var i = 0; i < EV.length; i++) {
      if (EV[i][2] === DELIVER && lane[EV[i][1]] === 0 && ++dl === 60) { t = EV[i][0]; break; }
    }
    view0 = 0; view1 = Math.max(t, 1000);
  })();

  function x(t) { return LEFT + (t - view0) / (view1 - view0) * (W - LEFT - RIGHT); }
  function tAt(px) { return view0 + (px - LEFT) / (W - LEFT - RIGHT) * (view1 - view0); }
  function y(L) { return TOP + L * LH + LH * 0.72; }
  function n1(v) { return Math.round(v * 10) / 10; }

  function ticks() {
    var span = view1 - view0, target = (W - LEFT) / 90, raw = span / Math.max(target, 1);
    var p = Math.pow(10, Math.floor(Math.log10(raw))), step = p;
    [1, 2, 5, 10].some(function (k) { step = k * p; return step >= raw; });
    var out = [], t = Math.ceil(view0 / step) * step;
    for (; t <= view1; t += step) out.push(t);
    return out;
  }

  function draw() {
    W = Math.max(host.clientWidth || 800, 320);
    var s = [];
    s.push('<svg xmlns="http://www.w3.org/2000/svg" width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="space-time diagram of the trace">');
    for (var L = 0; L < NL; L++) {
      if (L % 2) s.push('<rect class="lane-bg" x="0" y="' + (TOP + L * LH) + '" width="' + W + '" height="' + LH + '"/>');
    }
    ticks().forEach(function (t) {
      var X = n1(x(t));
      s.push('<line class="grid" x1="' + X + '" y1="' + (TOP - 4) + '" x2="' + X + '" y2="' + (H - BOTTOM) + '"/><text class="tick" x="' + X + '" y="' + (TOP - 8) + '">' + (t / 1000).toFixed(t % 1000 ? 1 : 0) + "</text>");
    });
    s.push('<text class="axis-title" x="6" y="' + (TOP - 8) + '">time (ms)</text>');
    if (D.windowed && D.complete_until != null && D.complete_until < view1) {
      var px = Math.max(LEFT, x(D.complete_until));
      s.push('<rect class="partial" x="' + n1(px) + '" y="' + TOP + '" width="' + n1(W - RIGHT - px) + '" height="' + (NL * LH) + '"><title>from here on the trace holds only the records stamped at or below its window</title></rect>');
      s.push('<text class="partial-label" x="' + n1(px + 4) + '" y="' + (TOP + 11) + '">trace windowed from here</text>');
    }
    for (L = 0; L < NL; L++) {
      var Y = y(L), P = PEERS[L];
      s.push('<line class="lane-line" x1="' + LEFT + '" y1="' + Y + '" x2="' + (W - RIGHT) + '" y2="' + Y + '"/>');
      s.push('<text class="lane-name" x="6" y="' + (Y - 4) + '">' + esc(P.name.length > 16 ? P.name.slice(0, 15) + "…" : P.name) + '</text><text class="lane-sub" x="6" y="' + (Y + 10) + '">member ' + P.id + (P.region ? " · " + esc(P.region) : "") + "</text>");
    }
    var fade = followed >= 0 ? " faded" : "";
    function cls(m) { return m === followed ? " followed" : fade; }
    // Which messages are in view decides the level of detail.
    var lo = view0, hi = view1, visible = 0;
    for (var m = 0; m < NM; m++) {
      var si = sendAt[m];
      if (si >= 0 && EV[si][0] <= hi && EV[si][0] >= lo - (hi - lo)) visible++;
    }
    var arrows = visible <= 400;
    // Bars.
    bars.forEach(function (b) {
      if (b[3] < lo || b[2] > hi) return;
      var x1 = Math.max(x(b[2]), LEFT - 2), x2 = Math.min(x(b[3]), W), m = b[1];
      var c = colour(MS[m][0]);
      s.push('<rect class="bar hit' + cls(m) + '" data-m="' + m + '" x="' + n1(x1) + '" y="' + n1(y(b[0]) - 7 - b[4] * 4.5) + '" width="' + n1(Math.max(x2 - x1, 1.2)) + '" height="3.4" fill="' + c + '"/>');
    });
    // Arrows from each send to each arrival.
    if (arrows) {
      for (m = 0; m < NM; m++) {
        si = sendAt[m];
        if (si < 0) continue;
        var ts = EV[si][0], Ls = lane[EV[si][1]], c = colour(MS[m][0]);
        for (L = 0; L < NL; L++) {
          var ai = inAt[L][m];
          if (ai < 0 || ai === si) continue;
          var ta = EV[ai][0];
          if ((ts < lo && ta < lo) || (ts > hi && ta > hi)) continue;
          s.push('<line class="arrow hit' + cls(m) + '" data-m="' + m + '" x1="' + n1(x(ts)) + '" y1="' + y(Ls) + '" x2="' + n1(x(ta)) + '" y2="' + y(L) + '" stroke="' + c + '" marker-end="url(#ex-head)"/>');
        }
      }
    } else {
      s.push('<text class="lod" x="' + (LEFT + 4) + '" y="' + (H - 2) + '">' + visible + " messages in view: zoom in to see the arrows</text>");
    }
    // Sends and deliveries.
    EV.forEach(function (e) {
      if (e[0] < lo || e[0] > hi) return;
      var m = e[3], X = n1(x(e[0])), Y = y(lane[e[1]]), c = colour(MS[m][0]);
      if (e[2] === SEND) {
        s.push('<path class="send hit' + cls(m) + '" data-m="' + m + '" d="M' + (X - 4.5) + "," + (Y - 9) + "h9l-4.5,8z\" fill=\"" + c + '"><title>' + esc(PEERS[lane[e[1]]].name + " sends " + name(m) + ", stamp " + MS[m][2]) + "</title></path>");
      } else if (e[2] === DELIVER) {
        s.push('<circle class="dlv hit' + cls(m) + '" data-m="' + m + '" cx="' + X + '" cy="' + Y + '" r="3.6" fill="' + c + '"><title>' + esc(PEERS[lane[e[1]]].name + " delivers " + name(m) + " at " + ms(e[0])) + "</title></circle>");
      }
    });
    if (showRound && D.first) {
      D.first.at.forEach(function (a) {
        var L = lane[a[0]], i = outAt[L] ? outAt[L][a[1]] : -1;
        if (i >= 0) s.push('<circle class="ring" cx="' + n1(x(EV[i][0])) + '" cy="' + y(L) + '" r="8"/>');
      });
    }
    // The cursor.
    var ce = EV[cur], CX = n1(x(ce[0]));
    s.push('<line class="cursor" x1="' + CX + '" y1="' + (TOP - 4) + '" x2="' + CX + '" y2="' + (H - BOTTOM) + '"/>');
    s.push('<circle class="cursor-ev" cx="' + CX + '" cy="' + y(lane[ce[1]]) + '" r="7"/>');
    s.push('<defs><marker id="ex-head" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L6,3L0,6z" fill="#5b6475"/></marker></defs>');
    s.push("</svg>");
    host.innerHTML = s.join("");
  }

  // ---- the panels at the cursor ----
  function queueAt(L, i) {
    var q = [];
    for (var m = 0; m < NM; m++) {
      var a = inAt[L][m];
      if (a >= 0 && a <= i && !(outAt[L][m] >= 0 && outAt[L][m] <= i)) q.push(m);
    }
    if (D.order === "total") q.sort(function (a, b) { return MS[a][2] - MS[b][2] || MS[a][0] - MS[b][0]; });
    else if (D.order === "none") q.sort(function (a, b) { return inAt[L][a] - inAt[L][b]; });
    else q.sort(function (a, b) { return MS[a][0] - MS[b][0] || MS[a][3] - MS[b][3] || MS[a][1] - MS[b][1]; });
    return q;
  }
  // A record held at the link: an earlier record of its sender has not
  // arrived yet at this peer.
  function gapBefore(L, m, i) {
    var r = MS[m];
    if (r[3] !== 0) return -1;
    for (var k = 0; k < NM; k++) {
      var o = MS[k];
      if (o[0] === r[0] && o[3] === 0 && o[1] < r[1] && !(inAt[L][k] >= 0 && inAt[L][k] <= i)) return k;
    }
    return -1;
  }
  function panelsAt(i) {
    var h = [];
    for (var L = 0; L < NL; L++) {
      var P = PEERS[L], clock = 0, lastWait = -1, vc = null;
      for (var j = i; j >= 0; j--) {
        if (lane[EV[j][1]] === L) { clock = EV[j][4]; if (D.vcs && D.vcs[j]) vc = D.vcs[j]; break; }
      }
      for (j = i; j >= 0; j--) {
        if (lane[EV[j][1]] === L && EV[j][2] === WAIT) { lastWait = j; break; }
      }
      var q = queueAt(L, i);
      var head = lastWait >= 0 && q.indexOf(EV[lastWait][3]) >= 0 ? EV[lastWait][3] : -1;
      h.push('<div class="peer" data-peer="' + P.id + '" style="--pc:' + P.colour + '"><h3>' + esc(P.name) + ' <span class="note">member ' + P.id + "</span></h3>");
      h.push('<div>Lamport clock <span class="clock">' + clock + "</span></div>");
      if (vc) h.push('<div class="vc">vector clock [' + vc.join(", ") + "]</div>");
      if (q.length === 0) {
        h.push('<div class="note queue-empty">hold-back queue empty' + (D.order === "none" ? ": <code>none</code> delivers each message as it arrives" : "") + "</div>");
      } else {
        h.push('<div class="note">hold-back queue (' + q.length + (D.order === "total" ? ", in (stamp, sender) order" : D.order === "fifo" ? ", per sender" : "") + "):</div><ol class=\"queue\">");
        q.slice(0, 12).forEach(function (m) {
          var g = gapBefore(L, m, i), extra = "";
          if (m === head) extra = " ← waits";
          else if (g >= 0) extra = " (at the link: " + name(g) + " has not arrived)";
          h.push('<li data-msg="' + esc(name(m)) + '"' + (m === head ? ' class="head"' : "") + ">" + esc(name(m)) + " <span class=\"note\">stamp " + MS[m][2] + "</span>" + esc(extra) + "</li>");
        });
        if (q.length > 12) h.push('<li class="more">… ' + (q.length - 12) + " more</li>");
        h.push("</ol>");
        if (head >= 0) h.push('<div class="why">' + esc(why(lastWait)) + "</div>");
      }
      h.push("</div>");
    }
    panels.innerHTML = h.join("");
  }

  function followText() {
    if (followed < 0) { followEl.hidden = true; return; }
    var m = followed, parts = [];
    var si = sendAt[m];
    parts.push("<strong>" + esc(name(m)) + "</strong> (stamp " + MS[m][2] + ")");
    if (si >= 0) parts.push("sent by " + esc(PEERS[lane[EV[si][1]]].name) + " at " + ms(EV[si][0]));
    var rows = [];
    for (var L = 0; L < NL; L++) {
      var a = inAt[L][m], d = outAt[L][m];
      if (a < 0 && d < 0) continue;
      var pos = 0;
      if (d >= 0) for (var j = 0; j <= d; j++) if (lane[EV[j][1]] === L && EV[j][2] === DELIVER && MS[EV[j][3]][3] === 0) pos++;
      rows.push(esc(PEERS[L].name) + ": " + (a >= 0 && a !== si ? "arrived " + ms(EV[a][0]) + ", " : "") +
        (d >= 0 ? "delivered " + ms(EV[d][0]) + (a >= 0 ? " after waiting " + ms(EV[d][0] - EV[a][0]) : "") + (MS[m][3] === 0 ? ", the " + ordinal(pos) + " delivery" : "") : "not delivered in the trace"));
    }
    followEl.innerHTML = "Following " + parts.join(", ") + '<button type="button" id="ex-unfollow">stop following</button><ul><li>' + rows.join("</li><li>") + "</li></ul>";
    followEl.hidden = false;
    document.getElementById("ex-unfollow").onclick = function () { followed = -1; update(); };
  }

  function update() {
    slider.value = String(cur);
    statusEl.textContent = "Event " + (cur + 1) + " of " + EV.length + " at " + ms(EV[cur][0]) + ": " + describe(cur);
    draw();
    panelsAt(cur);
    followText();
  }

  function keepInView() {
    var t = EV[cur][0], span = view1 - view0;
    if (t < view0 || t > view1) { view0 = Math.max(0, t - span * 0.25); view1 = view0 + span; }
  }
  function seek(i) { cur = Math.max(0, Math.min(EV.length - 1, i)); keepInView(); update(); }
  function stop() { if (playing) { clearInterval(playing); playing = null; } document.getElementById("ex-play").textContent = "▶ play"; }

  document.getElementById("ex-start").onclick = function () { stop(); seek(0); };
  document.getElementById("ex-end").onclick = function () { stop(); seek(EV.length - 1); };
  document.getElementById("ex-prev").onclick = function () { stop(); seek(cur - 1); };
  document.getElementById("ex-next").onclick = function () { stop(); seek(cur + 1); };
  document.getElementById("ex-play").onclick = function () {
    if (playing) { stop(); return; }
    this.textContent = "❚❚ pause";
    playing = setInterval(function () { if (cur >= EV.length - 1) stop(); else seek(cur + 1); }, 120);
  };
  slider.addEventListener("input", function () { stop(); seek(parseInt(slider.value, 10) || 0); });
  function zoom(f, at) {
    var t = at == null ? (view0 + view1) / 2 : at, span = Math.max((view1 - view0) * f, 200);
    view0 = t - (t - view0) * span / (view1 - view0); view1 = view0 + span; draw();
  }
  document.getElementById("ex-zoom-in").onclick = function () { zoom(0.5, EV[cur][0]); };
  document.getElementById("ex-zoom-out").onclick = function () { zoom(2, EV[cur][0]); };
  document.getElementById("ex-fit").onclick = function () { view0 = 0; view1 = Math.max(T_END, 1000); draw(); };
  host.addEventListener("wheel", function (e) {
    e.preventDefault();
    if (e.shiftKey) { var d = (view1 - view0) * (e.deltaY > 0 ? 0.1 : -0.1); view0 += d; view1 += d; draw(); return; }
    var r = host.getBoundingClientRect();
    zoom(e.deltaY > 0 ? 1.25 : 0.8, tAt(e.clientX - r.left));
  }, { passive: false });
  // Drag pans; a click (no drag) follows a message or moves the cursor.
  var drag = null;
  host.addEventListener("pointerdown", function (e) { drag = { x: e.clientX, v0: view0, v1: view1, moved: false }; });
  window.addEventListener("pointermove", function (e) {
    if (!drag) return;
    var dx = e.clientX - drag.x;
    if (Math.abs(dx) > 3) drag.moved = true;
    if (!drag.moved) return;
    var dt = dx / (W - LEFT - RIGHT) * (drag.v1 - drag.v0);
    view0 = drag.v0 - dt; view1 = drag.v1 - dt; draw();
  });
  window.addEventListener("pointerup", function (e) {
    var d = drag; drag = null;
    if (!d || d.moved || !host.contains(e.target)) return;
    var hit = e.target.closest ? e.target.closest("[data-m]") : null;
    if (hit) { followed = parseInt(hit.getAttribute("data-m"), 10); update(); return; }
    var r = host.getBoundingClientRect(), t = tAt(e.clientX - r.left), best = 0;
    for (var i = 0; i < EV.length; i++) { if (EV[i][0] <= t) best = i; else break; }
    stop(); seek(best);
  });
  document.addEventListener("keydown", function (e) {
    if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "BUTTON") && e.target !== slider) return;
    if (e.target === slider) return; // the slider steps by one event itself
    if (e.key === "ArrowRight") { stop(); seek(cur + 1); e.preventDefault(); }
    else if (e.key === "ArrowLeft") { stop(); seek(cur - 1); e.preventDefault(); }
    else if (e.key === "Home") { stop(); seek(0); e.preventDefault(); }
    else if (e.key === "End") { stop(); seek(EV.length - 1); e.preventDefault(); }
    else if (e.key === " ") { document.getElementById("ex-play").click(); e.preventDefault(); }
  });
  if (D.first && D.first.at.length) {
    var fb = document.getElementById("ex-first");
    fb.hidden = false;
    fb.textContent = "first unordered round (round " + (D.first.round + 1) + ")";
    fb.onclick = function () {
      showRound = true;
      var last = 0;
      D.first.at.forEach(function (a) { var i = outAt[lane[a[0]]][a[1]]; if (i > last) last = i; });
      var words = D.first.at.map(function (a) { return esc(PEERS[lane[a[0]]].name) + " delivered " + a[2] + ":" + a[3]; });
      roundEl.innerHTML = "<strong>Round " + (D.first.round + 1) + "</strong> (the " + ordinal(D.first.round + 1) + " delivery of every peer; rounds count from 1 here) is the first where the peers disagree: " + words.join(", ") + ". The rings mark these deliveries.";
      roundEl.hidden = false;
      var span = view1 - view0;
      view0 = Math.max(0, EV[last][0] - span / 2); view1 = view0 + span;
      stop(); seek(last);
    };
  }
  window.addEventListener("resize", function () { draw(); });
  root.classList.add("live");
  // Without script the static diagram is the picture; with the explorer up
  // it folds away (still one click away).
  // (The static diagram comes after this script in the page.)
  function fold() {
    var staticDetails = document.getElementById("static-diagram");
    if (staticDetails) staticDetails.removeAttribute("open");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fold);
  else fold();
  // A link may name the event to start at: report.html#event=42 (1-based,
  // as the status line counts).
  var at = /event=(\d+)/.exec(location.hash);
  if (at) { cur = Math.max(0, Math.min(EV.length - 1, parseInt(at[1], 10) - 1)); keepInView(); }
  update();
})();
