"use strict";
// Starts ReDoc from the page's data-* attributes. ReDoc styles itself with <style> elements
// (styled-components), which the page's policy allows only with the nonce it was sent: an
// attribute named `nonce` would be hidden from scripts by the browser, hence data-style-nonce.
(function () {
  var element = document.getElementById("redoc");
  Redoc.init(
    element.getAttribute("data-spec-url"),
    { nonce: element.getAttribute("data-style-nonce") },
    element
  );
})();
