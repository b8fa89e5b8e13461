// The rule grid: add / reorder / delete rows, check every cell as typed, preview the impact, save.
(function () {
  "use strict";
  const grid = document.getElementById("grid");
  const body = grid.querySelector("tbody");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const form = document.getElementById("save-form");
  const baseInput = document.getElementById("base");
  const indicator = form.querySelector('input[name="indicator"]').value || null;
  let timer = null;
  let asked = 0;

  function rows() {
    return Array.from(body.querySelectorAll("tr.row")).map(function (tr) {
      const cells = {};
      tr.querySelectorAll("td[data-col]").forEach(function (td) { cells[td.dataset.col] = td.querySelector("input").value; });
      return { cells: cells, keep: JSON.parse(tr.dataset.keep || "{}") };
    });
  }

  function post(url, payload) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: JSON.stringify(payload)
    }).then(function (r) { return r.json(); });
  }

  function renumber() {
    body.querySelectorAll("tr.row").forEach(function (tr, i) { tr.querySelector(".pos").textContent = i + 1; });
  }

  function check() {
    const mine = ++asked;
    document.getElementById("check-status").textContent = "…";
    post(grid.dataset.check, { base: baseInput.value, indicator: indicator, rows: rows() }).then(function (answer) {
      if (mine !== asked) { return; }  // a newer check is on its way
      const trs = body.querySelectorAll("tr.row");
      body.querySelectorAll(".msg").forEach(function (m) { m.textContent = ""; });
      body.querySelectorAll(".bad").forEach(function (el) { el.classList.remove("bad"); });
      (answer.cells || []).forEach(function (c) {
        const tr = trs[c.row];
        if (!tr) { return; }
        const td = (c.column && tr.querySelector('td[data-col="' + c.column + '"]')) || tr.querySelector("td[data-col]");
        td.classList.add("bad");
        const msg = td.querySelector(".msg");
        msg.textContent = msg.textContent ? msg.textContent + "; " + c.message : c.message;
      });
      const problems = document.getElementById("problems");
      problems.textContent = (answer.problems || []).map(function (p) { return (p.file ? p.file + ":" + (p.line || "") + " " : "") + p.message; }).join("\n");
      document.getElementById("check-status").textContent = answer.ok ? document.getElementById("all-pass-text").textContent : "";
    });
  }

  function changed() {
    clearTimeout(timer);
    timer = setTimeout(check, 350);
  }

  body.addEventListener("input", changed);
  body.addEventListener("click", function (e) {
    const tr = e.target.closest("tr.row");
    if (!tr) { return; }
    if (e.target.classList.contains("del")) { tr.remove(); }
    else if (e.target.classList.contains("up") && tr.previousElementSibling) { body.insertBefore(tr, tr.previousElementSibling); }
    else if (e.target.classList.contains("down") && tr.nextElementSibling) { body.insertBefore(tr.nextElementSibling, tr); }
    else { return; }
    renumber();
    changed();
  });
  document.getElementById("add-row").addEventListener("click", function () {
    body.appendChild(document.getElementById("row-template").content.firstElementChild.cloneNode(true));
    renumber();
    body.lastElementChild.querySelector("input").focus();
  });
  document.getElementById("preview").addEventListener("click", function () {
    const target = document.getElementById("impact");
    target.textContent = "…";
    post(grid.dataset.impact, { base: baseInput.value, indicator: indicator, rows: rows() }).then(function (answer) {
      target.innerHTML = answer.html;  // rendered (and escaped) by the server's template
    });
  });
  const rebase = document.getElementById("rebase");
  if (rebase) {
    rebase.addEventListener("click", function () {
      baseInput.value = rebase.dataset.head;
      document.getElementById("base-shown").textContent = rebase.dataset.head.slice(0, 10);
      document.getElementById("stale").hidden = true;
      check();
    });
  }
  form.addEventListener("submit", function () { document.getElementById("rows").value = JSON.stringify(rows()); });
  if (document.getElementById("stale") || document.getElementById("refused")) { check(); }
}());
