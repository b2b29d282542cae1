/**
 * The console's stylesheet and script, served by the server itself under
 * `/admin/static/` (no CDN; the CSP allows only same-origin scripts and styles, no inline
 * script). The pages work without the script; it adds the policy editor's live line
 * numbers, copy buttons and delete confirmations.
 */

/** `/admin/static/console.css`. Phones (≤ 720px): tables become one card per row. */
export const CONSOLE_CSS = `
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa;line-height:1.45}
a{color:#0550ae}
header{background:#1f2328;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;align-items:center;gap:.4rem 1.2rem}
header .brand{font-weight:700;color:#fff;text-decoration:none;margin-right:.5rem}
header nav{display:flex;flex-wrap:wrap;gap:.2rem .9rem}
header nav a{color:#d0d7de;text-decoration:none;padding:.2rem 0}
header nav a[aria-current=page]{color:#fff;border-bottom:2px solid #fff}
header .who{margin-left:auto;display:flex;align-items:center;gap:.6rem;font-size:.9rem;color:#d0d7de;flex-wrap:wrap}
header .who form{margin:0}
header .badge{background:transparent;color:#fff;border-color:#8c959f}
header .who button{background:transparent;color:#fff;border:1px solid #8c959f;padding:.2rem .6rem;margin:0}
main{max-width:80rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.4rem 0 1rem}
h2{font-size:1.15rem;margin:1.6rem 0 .6rem}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1rem;margin-bottom:1rem;overflow-wrap:anywhere}
.card>h2:first-child,.card>h3:first-child{margin-top:0}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de;border-radius:6px}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #eaeef2;vertical-align:top;overflow-wrap:anywhere}
th{font-size:.8rem;text-transform:uppercase;color:#57606a;background:#f6f8fa}
td.actions form{display:inline-block;margin:0 .3rem .3rem 0}
.muted{color:#57606a;font-size:.9rem}
.badge{display:inline-block;padding:0 .45rem;border-radius:1rem;font-size:.8rem;border:1px solid #d0d7de;background:#f6f8fa;margin:0 .2rem .2rem 0}
.badge.ok{background:#dafbe1;border-color:#4ac26b;color:#116329}
.badge.warn{background:#fff8c5;border-color:#d4a72c;color:#7d4e00}
.badge.bad{background:#ffebe9;border-color:#ff8182;color:#a40e26}
.flash{padding:.6rem .8rem;border-radius:6px;margin-bottom:1rem;background:#dafbe1;border:1px solid #4ac26b}
.err{padding:.6rem .8rem;border-radius:6px;margin-bottom:1rem;background:#ffebe9;border:1px solid #ff8182;color:#82071e;overflow-wrap:anywhere}
form.inline{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end;margin:.4rem 0}
form.inline label{display:flex;flex-direction:column;font-size:.85rem;gap:.15rem}
form.stack label{display:block;margin:.6rem 0 .2rem;font-weight:600;font-size:.9rem}
form.stack .check{font-weight:400;display:flex;gap:.4rem;align-items:center}
input,select,textarea{font:inherit;padding:.35rem .5rem;border:1px solid #8c959f;border-radius:4px;max-width:100%;background:#fff;color:#1f2328}
input[type=checkbox]{width:auto}
button,.button{font:inherit;padding:.35rem .9rem;border-radius:4px;border:1px solid #1f6feb;background:#0969da;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#f6f8fa;color:#1f2328;border-color:#8c959f}
button.danger{background:#cf222e;border-color:#a40e26}
.secret{font-family:ui-monospace,monospace;width:100%}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem}
pre.diff{background:#f6f8fa;padding:.5rem;overflow:auto;max-height:24rem;white-space:pre}
.editor{display:flex;border:1px solid #8c959f;border-radius:4px;background:#fff;max-height:36rem;overflow:hidden}
.editor .gutter{margin:0;padding:.4rem .4rem;text-align:right;color:#57606a;background:#f6f8fa;border-right:1px solid #d0d7de;user-select:none;overflow:hidden;min-width:3rem;line-height:1.4;font-size:.85rem}
.editor .gutter .bad{background:#a40e26;color:#fff;display:inline-block;width:100%}
.editor textarea{flex:1;border:0;border-radius:0;resize:vertical;min-height:24rem;line-height:1.4;font-size:.85rem;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre;overflow:auto;min-width:0;padding:.4rem}
dl.facts{display:grid;grid-template-columns:minmax(8rem,max-content) 1fr;gap:.3rem 1rem;margin:0}
dl.facts dt{font-weight:600;color:#57606a}
dl.facts dd{margin:0;overflow-wrap:anywhere}
.pager{display:flex;gap:1rem;margin:.8rem 0;flex-wrap:wrap}
.sr-only{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0,0,0,0);border:0}
@media (max-width:720px){
  main{padding:.6rem}
  table,thead,tbody,tr,th,td{display:block;width:100%}
  table{border:0;background:transparent}
  thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0,0,0,0)}
  tr{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin-bottom:.7rem;padding:.3rem 0}
  td{border:0;padding:.25rem .7rem}
  td[data-label]::before{content:attr(data-label);display:block;font-size:.75rem;text-transform:uppercase;color:#57606a}
  dl.facts{grid-template-columns:1fr}
  header .who{margin-left:0}
}
`;

/** `/admin/static/console.js` (no inline script anywhere; CSP `script-src 'self'`). */
export const CONSOLE_JS = `"use strict";
(function () {
  // Policy editor: line numbers follow the text and its scrolling.
  var ta = document.getElementById("policy");
  var gutter = document.getElementById("policy-gutter");
  if (ta && gutter) {
    var bad = Number(gutter.getAttribute("data-error-line") || "0");
    var render = function () {
      var n = ta.value.split("\\n").length;
      var out = [];
      for (var i = 1; i <= n; i++) out.push(i === bad ? '<span class="bad">' + i + "</span>" : String(i));
      gutter.innerHTML = out.join("\\n");
      gutter.scrollTop = ta.scrollTop;
    };
    ta.addEventListener("input", function () { bad = 0; render(); });
    ta.addEventListener("scroll", function () { gutter.scrollTop = ta.scrollTop; });
    render();
    var err = document.getElementById("policy-error");
    var line = Number(err ? err.getAttribute("data-line") : "0");
    var col = Number(err ? err.getAttribute("data-column") : "0");
    if (line > 0) {
      var lines = ta.value.split("\\n");
      var off = 0;
      for (var j = 0; j < line - 1 && j < lines.length; j++) off += lines[j].length + 1;
      off += Math.max(0, col - 1);
      ta.focus();
      ta.setSelectionRange(off, off);
      ta.scrollTop = Math.max(0, (line - 5) * parseFloat(getComputedStyle(ta).lineHeight || "18"));
    }
  }
  // Copy buttons: data-copy names the element whose value is copied.
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var el = document.getElementById(b.getAttribute("data-copy"));
      if (!el) return;
      var done = function () { b.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(el.value).then(done, function () {});
      else { el.select(); document.execCommand("copy"); done(); }
    });
  });
  // Confirmation before destructive changes.
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
    });
  });
})();
`;
