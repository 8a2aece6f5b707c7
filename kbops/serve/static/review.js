// kbops review page: keyboard shortcuts and selection. No framework, no network calls;
// every action is a plain form POST, so the page also works without this file.
(function () {
  "use strict";
  const items = () => Array.from(document.querySelectorAll("article.item[data-id]"));
  let current = null;

  function focusItem(el, scroll) {
    if (!el) return;
    if (current) current.classList.remove("current-item");
    current = el;
    el.classList.add("current-item");
    if (scroll !== false) el.scrollIntoView({ block: "nearest" });
    el.focus({ preventScroll: true });
  }

  function move(step) {
    const list = items();
    if (!list.length) return;
    const i = current ? list.indexOf(current) : -1;
    focusItem(list[Math.max(0, Math.min(list.length - 1, i + step))]);
  }

  function openPanel(el, name) {
    if (!el) return;
    el.querySelectorAll(".panel").forEach((p) => { p.hidden = p.dataset.panel !== name; });
    const panel = el.querySelector('.panel[data-panel="' + name + '"]');
    if (!panel) return;
    const field = panel.querySelector(name === "edit" ? 'textarea[name="answer"]' : name === "merge" ? 'input[name="merge_into"]' : 'input[name="note"]');
    if (field) { field.focus(); if (field.select && name !== "edit") field.select(); }
  }

  function closePanels() {
    document.querySelectorAll(".panel").forEach((p) => { p.hidden = true; });
    if (current) current.focus({ preventScroll: true });
  }

  function updateCount() {
    const picked = document.querySelectorAll("input.pick:checked");
    const label = document.getElementById("selected-count");
    if (label) label.textContent = picked.length + " selected";
    items().forEach((el) => {
      const box = el.querySelector("input.pick");
      el.classList.toggle("picked", !!(box && box.checked));
    });
  }

  function toggle(el) {
    const box = el && el.querySelector("input.pick");
    if (box) { box.checked = !box.checked; updateCount(); }
  }

  function selectPage() {
    const boxes = Array.from(document.querySelectorAll("input.pick"));
    const all = boxes.length && boxes.every((b) => b.checked);
    boxes.forEach((b) => { b.checked = !all; });
    updateCount();
  }

  function submitBulk(action) {
    const form = document.getElementById("bulk-form");
    if (!form) return;
    if (action === "reject") {
      const reason = document.getElementById("bulk-reason");
      if (!reason.value.trim()) { reason.focus(); return; }
    }
    const button = document.getElementById(action === "approve" ? "bulk-approve" : "bulk-reject");
    form.requestSubmit(button);
  }

  document.addEventListener("click", (ev) => {
    const t = ev.target.closest("button.toggle");
    if (t) { const el = t.closest("article.item"); focusItem(el, false); openPanel(el, t.dataset.panel); return; }
    const sp = ev.target.closest("#select-page");
    if (sp) { selectPage(); return; }
    const el = ev.target.closest("article.item[data-id]");
    if (el && el !== current) focusItem(el, false);
  });
  document.addEventListener("change", (ev) => { if (ev.target.matches("input.pick")) updateCount(); });

  document.addEventListener("keydown", (ev) => {
    const tag = (ev.target.tagName || "").toLowerCase();
    const kind = (ev.target.type || "").toLowerCase();
    const typing = tag === "textarea" || tag === "select" || (tag === "input" && !["checkbox", "radio", "button", "submit"].includes(kind));
    if (ev.key === "Escape") { if (typing) ev.target.blur(); closePanels(); return; }
    if (typing) {
      // Ctrl/Cmd+Enter saves an edit from inside the textarea.
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { const f = ev.target.form; if (f) { ev.preventDefault(); f.requestSubmit(); } }
      // Enter in the bulk reason field rejects the selection (never approves it).
      if (ev.key === "Enter" && ev.target.id === "bulk-reason") { ev.preventDefault(); submitBulk("reject"); }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const back = document.getElementById("back");
    if (back && (ev.key === "Enter" || ev.key === "j" || ev.key === "k")) { ev.preventDefault(); back.click(); return; }
    switch (ev.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "a": if (current) { const f = current.querySelector("form.act-approve"); if (f) f.requestSubmit(); } break;
      case "e": openPanel(current, "edit"); break;
      case "r": openPanel(current, "reject"); break;
      case "m": openPanel(current, "merge"); break;
      case "x": toggle(current); break;
      case "X": selectPage(); break;
      case "A": submitBulk("approve"); break;
      case "R": submitBulk("reject"); break;
      default: return;
    }
    ev.preventDefault();
  });

  // The sticky header and bulk toolbar cover the top of the window: scrolling to an item
  // (the #item-<next> after a decision, j/k) must stop below them, or the item's question hides under them.
  function stickyHeight() {
    let bottom = 0;
    document.querySelectorAll("header.top, form.bulk").forEach((el) => {
      if (getComputedStyle(el).position === "sticky") bottom = Math.max(bottom, el.getBoundingClientRect().bottom);
    });
    return Math.ceil(bottom);
  }

  function keepClearOfToolbar() {
    document.documentElement.style.scrollPaddingTop = (stickyHeight() + 8) + "px";
  }

  // After a decision the server redirects to #item-<next>: continue there (below the toolbar), else at the top.
  document.addEventListener("DOMContentLoaded", () => {
    keepClearOfToolbar();
    const fromHash = location.hash && document.getElementById(location.hash.slice(1));
    const target = fromHash && fromHash.matches("article.item") ? fromHash : null;
    focusItem(target || items()[0], false);
    if (target) target.scrollIntoView({ block: "start" });
    updateCount();
  });
  window.addEventListener("resize", keepClearOfToolbar);
})();
