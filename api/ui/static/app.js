/* IOP dashboard: the few lines htmx does not do. No inline scripts (the CSP forbids them). */
(function () {
  'use strict';
  // After htmx replaces the whole page (a boosted link or form), move focus the way a page load
  // would for a screen reader: to the message about what just happened, else to the main heading.
  document.addEventListener('htmx:afterSettle', function (event) {
    var detail = event.detail || {};
    if (!detail.boosted) { return; }
    var target = document.querySelector('[data-focus-first]') || document.querySelector('main h1');
    if (!target) { return; }
    if (!target.hasAttribute('tabindex')) { target.setAttribute('tabindex', '-1'); }
    target.focus({ preventScroll: false });
  });
})();
