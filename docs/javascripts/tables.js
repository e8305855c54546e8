// Tables of numbers on a page as wide as the reader's: a cell that is one "mean ± sd" stays on one
// line (a cell of prose still wraps), and a long metric name in a column's head may break after a
// "/", "_" or "." (test/dci_ disentanglement), nowhere else.
document.addEventListener("DOMContentLoaded", () => {
  const spread = /^\S+ ± \S+$/;
  for (const cell of document.querySelectorAll(".md-typeset td")) {
    if (spread.test(cell.textContent.trim())) cell.style.whiteSpace = "nowrap";
  }
  for (const head of document.querySelectorAll(".md-typeset th")) {
    if (head.children.length) continue;  // a head with markup keeps it
    const parts = head.textContent.split(/(?<=[/_.])/);
    head.replaceChildren(...parts.flatMap((part, i) => (i ? [document.createElement("wbr"), part] : [part])));
  }
});
