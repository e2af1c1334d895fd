(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  // The runs table: a filter (also from index.html#filter=WORD or ?filter=WORD) and sorting.
  var table = document.getElementById("runs");
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var input = document.getElementById("filter");
  var shown = document.getElementById("shown");

  function applyFilter() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var count = 0;
    rows.forEach(function (row) {
      var text = row.textContent.toLowerCase();
      var keep = words.every(function (w) { return text.indexOf(w) !== -1; });
      row.hidden = !keep;
      if (keep) { count += 1; }
    });
    shown.textContent = count + " of " + rows.length + " shown";
  }

  function given() {
    var hash = window.location.hash.replace(/^#/, "");
    var fromHash = new URLSearchParams(hash).get("filter");
    if (fromHash !== null) { return fromHash; }
    return new URLSearchParams(window.location.search).get("filter") || "";
  }

  input.value = given();
  input.addEventListener("input", applyFilter);
  window.addEventListener("hashchange", function () { input.value = given(); applyFilter(); });
  applyFilter();

  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  headers.forEach(function (th, column) {
    th.querySelector("button").addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var sorted = rows.slice().sort(function (a, b) {
        var x = a.cells[column].textContent, y = b.cells[column].textContent;
        var order = x.localeCompare(y, undefined, { numeric: true });
        return ascending ? order : -order;
      });
      sorted.forEach(function (row) { body.appendChild(row); });
    });
  });

  // The lineage graph: laid out by dagre, drawn as SVG; record text goes in as textContent.
  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var holder = document.getElementById("graph");
  if (typeof dagre === "undefined" || data.nodes.length === 0) {
    holder.textContent = data.nodes.length ? "The graph's layout library did not load." : "No run.";
    return;
  }
  var svg = document.createElementNS(SVG, "svg");
  holder.appendChild(svg);
  var measure = document.createElementNS(SVG, "text");
  measure.setAttribute("class", "node");
  svg.appendChild(measure);

  function clip(text) { return text.length > 60 ? text.slice(0, 59) + "\u2026" : text; }
  function width(text) {
    measure.textContent = text;
    var w = measure.getComputedTextLength ? measure.getComputedTextLength() : 0;
    return Math.max(w || text.length * 7, 40);
  }

  var g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 46, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(function () { return {}; });
  data.nodes.forEach(function (node) {
    var lines = [clip(node.label)];
    if (node.kind === "run") { lines.push(node.status); }
    var w = Math.max.apply(null, lines.map(width)) + 20;
    g.setNode(node.id, { width: w, height: 10 + 16 * lines.length, lines: lines, node: node });
  });
  data.edges.forEach(function (edge) { g.setEdge(edge[0], edge[1]); });
  dagre.layout(g);
  svg.removeChild(measure);

  var size = g.graph();
  svg.setAttribute("width", Math.ceil(size.width));
  svg.setAttribute("height", Math.ceil(size.height));
  svg.setAttribute("viewBox", "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height));
  var defs = document.createElementNS(SVG, "defs");
  var marker = document.createElementNS(SVG, "marker");
  marker.setAttribute("id", "arrow");
  marker.setAttribute("viewBox", "0 0 10 10");
  marker.setAttribute("refX", "10");
  marker.setAttribute("refY", "5");
  marker.setAttribute("markerWidth", "7");
  marker.setAttribute("markerHeight", "7");
  marker.setAttribute("orient", "auto");
  var tip = document.createElementNS(SVG, "path");
  tip.setAttribute("d", "M0,0 L10,5 L0,10 z");
  marker.appendChild(tip);
  defs.appendChild(marker);
  svg.appendChild(defs);

  g.edges().forEach(function (e) {
    var points = g.edge(e).points;
    var path = document.createElementNS(SVG, "path");
    path.setAttribute("class", "edge");
    path.setAttribute("d", points.map(function (p, i) {
      return (i ? "L" : "M") + p.x.toFixed(1) + "," + p.y.toFixed(1);
    }).join(" "));
    path.setAttribute("marker-end", "url(#arrow)");
    path.setAttribute("data-from", e.v);
    path.setAttribute("data-to", e.w);
    svg.appendChild(path);
  });

  g.nodes().forEach(function (id) {
    var laid = g.node(id), node = laid.node;
    var link = document.createElementNS(SVG, "a");
    // Only a page name the report made: never anything a record says.
    if (/^artifacts\/[0-9a-f]+\.html$/.test(node.href)) { link.setAttribute("href", node.href); }
    var group = document.createElementNS(SVG, "g");
    group.setAttribute(
      "class", "node " + node.kind + (node.failed ? " failed" : "") + (node.missing ? " missing" : "")
    );
    group.setAttribute("data-kind", node.kind);
    group.setAttribute("data-id", node.id);
    var title = document.createElementNS(SVG, "title");
    title.textContent = node.label + (node.kind === "run" ? " (" + node.status + ")" : "") +
      (node.missing ? " (missing: no run found it)" : "");
    group.appendChild(title);
    var rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", (laid.x - laid.width / 2).toFixed(1));
    rect.setAttribute("y", (laid.y - laid.height / 2).toFixed(1));
    rect.setAttribute("width", laid.width.toFixed(1));
    rect.setAttribute("height", laid.height.toFixed(1));
    group.appendChild(rect);
    laid.lines.forEach(function (line, i) {
      var text = document.createElementNS(SVG, "text");
      text.setAttribute("x", laid.x.toFixed(1));
      text.setAttribute("y", (laid.y - laid.height / 2 + 19 + 16 * i).toFixed(1));
      text.setAttribute("text-anchor", "middle");
      text.textContent = line;
      group.appendChild(text);
    });
    link.appendChild(group);
    svg.appendChild(link);
  });
}());
