(function () {
  "use strict";
  document.documentElement.className += " js";
  var RANK = { crash: 0, timeout: 1, error: 2, shape: 3, dtype: 4, nan: 5, fail: 6, known: 7,
               convention: 8, unsupported: 9, pass: 10 };
  var DIVERGENT = ["crash", "timeout", "error", "shape", "dtype", "nan", "fail"];
  var FIELDS = ["family", "verdict", "target", "floatx", "q", "units", "sort"];

  // copy buttons of the repro scripts
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var code = document.getElementById(button.getAttribute("data-copy"));
      var text = code ? code.textContent : "";
      var done = function () { button.textContent = "copied"; setTimeout(function () { button.textContent = "copy"; }, 1200); };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { select(code); });
      } else { select(code); }
    });
  });
  function select(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  var form = document.getElementById("filters");
  var table = document.getElementById("matrix");
  if (!form || !table) { return; }
  form.hidden = false;
  // the filters apply as they change: Enter in the search box must not submit the form
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  var rows = Array.prototype.slice.call(table.querySelectorAll("tr.row"));
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var firstTarget = 3;
  var targets = headers.slice(firstTarget).map(function (th) { return th.getAttribute("data-t"); });
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.op"));
  var state = { sort: "" };
  var searchText = [];

  function verdictOf(cell) {
    var match = /(?:^|\s)v-(\w+)/.exec(cell.className);
    return match ? match[1] : "";
  }
  function ratioOf(cell) {
    var value = parseFloat(cell && cell.getAttribute("data-r"));
    return isNaN(value) ? -1 : value;
  }
  function textOf(row, index) {
    if (searchText[index] === undefined) {
      var parts = [row.getAttribute("data-o"), row.getAttribute("data-f")];
      Array.prototype.forEach.call(row.cells, function (cell) { parts.push(cell.title || ""); });
      searchText[index] = parts.join(" ").toLowerCase();
    }
    return searchText[index];
  }
  function value(name) { return form.elements[name] ? form.elements[name].value : ""; }

  function setUnits(units) {
    rows.forEach(function (row) {
      for (var i = firstTarget; i < row.cells.length; i++) {
        var cell = row.cells[i];
        var alt = cell.getAttribute("data-u");
        if (alt === null) { continue; }
        if (cell.getAttribute("data-t0") === null) { cell.setAttribute("data-t0", cell.textContent); }
        cell.textContent = units === "ulp" ? alt : cell.getAttribute("data-t0");
      }
    });
  }

  function apply() {
    var family = value("family"), verdict = value("verdict"), target = value("target"),
        floatx = value("floatx"), query = value("q").trim().toLowerCase();
    var column = target ? targets.indexOf(target) + firstTarget : -1;
    headers.forEach(function (th, i) { th.hidden = column >= 0 && i >= firstTarget && i !== column; });
    var shown = 0, ops = {};
    rows.forEach(function (row, index) {
      var cells = row.cells;
      for (var i = firstTarget; i < cells.length; i++) {
        cells[i].hidden = column >= 0 && i !== column;
      }
      var ok = (!family || row.getAttribute("data-f") === family) &&
               (!floatx || row.getAttribute("data-x") === floatx);
      if (ok && verdict) {
        ok = false;
        for (var j = firstTarget; j < cells.length && !ok; j++) {
          if (cells[j].hidden) { continue; }
          var v = verdictOf(cells[j]);
          if (!v) { continue; }
          ok = v === verdict || (verdict === "divergent" && DIVERGENT.indexOf(v) >= 0) ||
               (verdict === "notpass" && v !== "pass");
        }
      }
      if (ok && query) { ok = textOf(row, index).indexOf(query) >= 0; }
      row.hidden = !ok;
      if (ok) { shown++; ops[row.getAttribute("data-o")] = true; }
    });
    Array.prototype.forEach.call(table.tBodies, function (body) {
      body.hidden = !body.querySelector("tr.row:not([hidden])");
    });
    var filtering = family || verdict || target || floatx || query;
    var hiddenOps = 0;
    sections.forEach(function (section) {
      section.hidden = !!filtering && !ops[section.getAttribute("data-o")];
      if (section.hidden) { hiddenOps++; }
    });
    var note = document.getElementById("hidden-ops");
    if (note) { note.textContent = hiddenOps ? "(" + hiddenOps + " ops hidden by the matrix filter)" : ""; }
    document.getElementById("count").textContent = "showing " + shown + " of " + rows.length + " rows";
    setUnits(value("units"));
    save();
  }

  function sortRows(key, descending) {
    headers.forEach(function (th) { th.classList.remove("asc", "desc"); });
    if (!key) { return; }
    // the key comes from the URL: compared as text, never built into a selector
    var th = headers.filter(function (h) { return h.getAttribute("data-sort") === key; })[0];
    if (th) { th.classList.add(descending ? "desc" : "asc"); }
    var index = /^\d+$/.test(key) ? parseInt(key, 10) + firstTarget : -1;
    function cellKey(row) {
      if (key === "op") { return [row.getAttribute("data-o"), row.getAttribute("data-x")]; }
      if (key === "floatx") { return [row.getAttribute("data-x"), row.getAttribute("data-o")]; }
      if (key === "worst") {
        var worstRatio = -1;
        for (var i = firstTarget; i < row.cells.length; i++) { worstRatio = Math.max(worstRatio, ratioOf(row.cells[i])); }
        return [-(RANK[verdictOf(row.cells[2])] === undefined ? 99 : RANK[verdictOf(row.cells[2])]), worstRatio];
      }
      var cell = row.cells[index];
      var rank = RANK[verdictOf(cell)];
      return [-(rank === undefined ? 99 : rank), ratioOf(cell)];
    }
    function compare(a, b) {
      var ka = cellKey(a), kb = cellKey(b);
      for (var i = 0; i < ka.length; i++) {
        if (ka[i] < kb[i]) { return -1; }
        if (ka[i] > kb[i]) { return 1; }
      }
      return 0;
    }
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var list = Array.prototype.slice.call(body.querySelectorAll("tr.row"));
      list.sort(function (a, b) { return descending ? compare(b, a) : compare(a, b); });
      list.forEach(function (row) { body.appendChild(row); });
    });
  }

  function save() {
    var parts = [];
    FIELDS.forEach(function (name) {
      var v = name === "sort" ? state.sort : value(name);
      if (v && !(name === "units" && v === "tol")) { parts.push(name + "=" + encodeURIComponent(v)); }
    });
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (hash !== location.hash && (hash || location.hash.indexOf("=") >= 0)) {
      try { history.replaceState(null, "", hash || location.pathname + location.search); } catch (e) { /* file:// quirks */ }
    }
  }

  function load() {
    var hash = location.hash.replace(/^#/, "");
    if (hash.indexOf("=") < 0) { return false; }
    hash.split("&").forEach(function (pair) {
      var at = pair.indexOf("=");
      if (at < 0) { return; }
      var name = pair.slice(0, at), v = decodeURIComponent(pair.slice(at + 1).replace(/\+/g, " "));
      if (name === "sort") { state.sort = v; }
      else if (form.elements[name] && FIELDS.indexOf(name) >= 0) { form.elements[name].value = v; }
    });
    return true;
  }

  function applySort() {
    var descending = state.sort.charAt(0) === "-";
    sortRows(descending ? state.sort.slice(1) : state.sort, descending);
  }

  headers.forEach(function (th) {
    var key = th.getAttribute("data-sort");
    if (!key) { return; }
    th.title = "sort (click again to reverse)";
    th.addEventListener("click", function () {
      var defaultDescending = key !== "op" && key !== "floatx";
      if (state.sort === key) { state.sort = "-" + key; }
      else if (state.sort === "-" + key) { state.sort = key; }
      else { state.sort = defaultDescending ? "-" + key : key; }
      applySort();
      save();
    });
  });
  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
  form.elements.reset.addEventListener("click", function () {
    FIELDS.forEach(function (name) { if (form.elements[name]) { form.elements[name].value = name === "units" ? "tol" : ""; } });
    state.sort = "";
    sortRows("op", false);
    headers.forEach(function (th) { th.classList.remove("asc", "desc"); });
    apply();
  });
  window.addEventListener("hashchange", function () { if (load()) { applySort(); apply(); } });
  load();
  applySort();
  apply();
})();
