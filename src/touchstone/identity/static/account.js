"use strict";
// Invitation and password-reset links: the token travels in the URL's fragment (never sent
// to a server), is taken out of the address bar at once, and is posted to the API once.
(() => {
  const reset = location.pathname.endsWith("/password-reset");
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  history.replaceState(null, "", location.pathname);
  const $ = (id) => document.getElementById(id);
  const form = $("form");
  const status = $("status");
  $("title").textContent = reset ? "Choose a new password" : "Accept your invitation";
  document.title = `Touchstone: ${$("title").textContent}`;
  if (!token) {
    status.textContent = "This page needs the link from your email: open that link again.";
    return;
  }
  form.hidden = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const password = $("password").value;
    if (password !== $("again").value) {
      status.textContent = "The two passwords differ.";
      return;
    }
    $("save").disabled = true;
    status.textContent = "";
    const url = reset ? "/api/v1/auth/password-reset/confirm" : "/api/v1/auth/invitations/accept";
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token, password }),
      });
      if (response.status === 204) {
        form.hidden = true;
        $("done").hidden = false;
        return;
      }
      const problem = await response.json().catch(() => ({}));
      const invalid = problem.invalid_params?.map((p) => p.reason).join("; ");
      status.textContent = invalid || problem.detail || problem.title || `Error ${response.status}`;
    } catch (error) {
      status.textContent = "The server cannot be reached; try again.";
    }
    $("save").disabled = false;
  });
})();
