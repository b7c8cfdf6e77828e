// Theme: "auto" follows the system; the toggle stores an explicit choice.
(function () {
  var stored = localStorage.getItem("paylab-theme");
  if (stored === "light" || stored === "dark") document.documentElement.dataset.theme = stored;
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-theme-toggle]");
    if (toggle) {
      var current = document.documentElement.dataset.theme;
      var dark = current === "dark" || (current === "auto" && matchMedia("(prefers-color-scheme: dark)").matches);
      var next = dark ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      localStorage.setItem("paylab-theme", next);
      document.dispatchEvent(new CustomEvent("paylab:theme", { detail: next }));
    }
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var source = document.querySelector(copy.dataset.copy);
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () { copy.textContent = "Copied"; });
      }
    }
  });
})();
