// The printed daily sheet: the button opens the browser's print dialog (a script file,
// since the pages' Content-Security-Policy allows no inline script).
"use strict";
document.getElementById("sheet-print").addEventListener("click", () => window.print());
