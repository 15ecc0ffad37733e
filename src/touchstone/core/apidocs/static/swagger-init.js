"use strict";
// Starts Swagger UI from the page's data-config attribute (FastAPI's defaults, the app's
// swagger_ui_parameters, the spec URL): the page has no inline script, so it runs under a
// Content-Security-Policy that allows scripts from this origin only.
(function () {
  var element = document.getElementById("swagger-ui");
  var config = JSON.parse(element.getAttribute("data-config"));
  config.dom_id = "#swagger-ui";
  config.oauth2RedirectUrl = new URL(config.oauth2RedirectUrl, window.location.href).href;
  config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
  window.ui = SwaggerUIBundle(config);
})();
