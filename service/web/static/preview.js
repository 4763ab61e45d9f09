// The preview form (service/web/preview.py): choosing a scenario fills its hook, service and date;
// the draft-orders field shows for the order hooks only.  Everything else is plain HTML.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var scenario = document.getElementById("scenario");
  var hook = document.getElementById("hook");
  var service = document.getElementById("service");
  var now = document.getElementById("now");
  var bundle = document.getElementById("bundle");
  var orders = document.getElementById("orders-field");
  if (!scenario || !hook) { return; }

  function showOrders() {
    orders.hidden = !(hook.value === "order-select" || hook.value === "order-sign");
  }

  function hasOption(select, value) {
    return Array.prototype.some.call(select.options, function (o) { return o.value === value; });
  }

  scenario.addEventListener("change", function () {
    var chosen = scenario.options[scenario.selectedIndex];
    bundle.disabled = chosen.value !== "";
    if (chosen.value === "") { return; }
    if (chosen.dataset.hook) { hook.value = chosen.dataset.hook; }
    if (chosen.dataset.service && hasOption(service, chosen.dataset.service)) { service.value = chosen.dataset.service; }
    if (chosen.dataset.now) { now.value = chosen.dataset.now; }
    showOrders();
  });
  hook.addEventListener("change", showOrders);
  bundle.disabled = scenario.value !== "";
  showOrders();
});
