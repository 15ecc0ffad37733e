// The appraiser's live purity test: camera -> WebRTC (or WebSocket JPEG frames) -> statuses.
// Plain JS, no external assets, so the page runs under a strict CSP and offline.
"use strict";

const API = "/api/v1";
const CHANNEL_OPEN_TIMEOUT_MS = 8000;
const ICE_GATHER_TIMEOUT_MS = 3000;
const JPEG_QUALITY = 0.8;
const COLOURS = { stone: "#4fc3f7", gold: "#ffd54f", streak: "#ff8a65", acid: "#81c784" };

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("touchstone.token"), stream: null, pc: null, ws: null };

function say(text) { $("message").textContent = text || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${state.token}` }, options.headers || {});
  const response = await fetch(API + path, Object.assign({}, options, { headers }));
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    if (response.status === 401) signOut();
    throw new Error(body?.detail || body?.title || `HTTP ${response.status}`);
  }
  return body;
}

function setToken(token) {
  state.token = token;
  sessionStorage.setItem("touchstone.token", token);
  showPicker();
}

function signOut() {
  state.token = null;
  sessionStorage.removeItem("touchstone.token");
  $("pick").hidden = true;
  $("decide").hidden = true;
  $("signin").hidden = false;
  document.body.dataset.state = "signed-out";
}

async function signIn(event) {
  event.preventDefault();
  const form = new URLSearchParams({ username: $("email").value, password: $("password").value });
  if ($("org").value) form.set("org", $("org").value);
  const response = await fetch(`${API}/auth/token`, { method: "POST", body: form });
  const body = await response.json();
  if (!response.ok) { say(body.detail || body.title); return; }
  setToken(body.access_token);
}

async function showPicker() {
  $("signin").hidden = true;
  $("pick").hidden = false;
  $("decide").hidden = false;
  document.body.dataset.state = "signed-in";
  try {
    const me = await api("/me");
    $("who").textContent = me.email || "";
  } catch (error) { /* the list below reports a bad token */ }
  try {
    const page = await api("/appraisals?limit=100");
    const select = $("appraisal");
    select.replaceChildren(...page.items.map((a) => new Option(`${a.id.slice(0, 8)} (${a.status})`, a.id)));
    await loadItems();
    document.body.dataset.state = "ready";
  } catch (error) { say(error.message); }
}

async function loadItems() {
  const id = $("appraisal").value;
  if (!id) { $("item").replaceChildren(); return; }
  const appraisal = await api(`/appraisals/${id}`);
  $("item").replaceChildren(...appraisal.items.map((item) =>
    new Option(`${item.item_type} x${item.count}, ${item.net_weight_g} g${item.karat ? ` (${item.karat})` : ""}`, item.id)));
}

async function createAppraisal(event) {
  event.preventDefault();
  const post = (path, body) => api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  try {
    const customer = await post("/customers", {
      full_name: $("c-name").value,
      phone: $("c-phone").value,
      id_document_type: $("c-id-type").value,
      id_number: $("c-id-number").value,
    });
    const appraisal = await post("/appraisals", { customer_id: customer.id });
    await post(`/appraisals/${appraisal.id}/items`, {
      item_type: $("i-type").value,
      count: Number($("i-count").value),
      gross_weight_g: $("i-gross").value,
      deduction_g: $("i-deduction").value || "0",
    });
    await showPicker();
    $("appraisal").value = appraisal.id;
    await loadItems();
    $("new-appraisal").open = false;
    say("Appraisal created; start the test when the stone is in view.");
  } catch (error) { say(error.message); }
}

async function act(path, body) {
  const id = $("appraisal").value;
  if (!id) { say("Pick an appraisal first."); return null; }
  try {
    return await api(`/appraisals/${id}/${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) { say(error.message); return null; }
}

function outcome(appraisal) {
  if (!appraisal) return;
  const valuation = appraisal.valuation;
  const lines = [`status: ${appraisal.status}`];
  if (valuation) {
    lines.push(`value: ₹${valuation.total_value}, eligible loan: ₹${valuation.eligible_max_loan}`);
    for (const check of valuation.checks) lines.push(`${check.passed ? "PASS" : "FAIL"} ${check.rule}: ${check.detail}`);
  }
  $("outcome").textContent = lines.join("\n");
  say("");
}

async function issueCertificate() {
  const certificate = await act("certificate");
  if (!certificate) return;
  for (const [id, url] of [["pdf", certificate.download_url], ["verify", certificate.verify_url]]) {
    $(id).href = url;
    $(id).hidden = false;
  }
  $("outcome").textContent = `certificate ${certificate.number}, digest ${certificate.digest}`;
}

function show(status) {
  if (status.type === "error") { say(`${status.code}: ${status.detail}`); return; }
  if (status.type !== "purity_status") return;
  $("stage").textContent = status.stage;
  $("confirmations").textContent = `${status.confirmations} / ${status.required_confirmations}`;
  $("hint").textContent = status.hint;
  if (status.detected) {
    $("detected").textContent = Object.entries(status.detected)
      .map(([thing, seen]) => `${seen ? "\u2713" : "\u2717"} ${thing}`).join("  ")
      + (status.missing ? ` (missing: ${status.missing})` : "");
  }
  drawDetections(status.detections);
  if (status.karat) {
    $("result").textContent = `${status.karat}` + (status.confidence != null ? ` (${Math.round(status.confidence * 100)}%)` : "")
      + (status.reason ? `: ${status.reason}` : "");
    document.body.dataset.result = status.karat;
  }
  if (status.saved) {
    document.body.dataset.state = "completed";
    say(`Saved; the appraisal is now ${status.appraisal_status}.`);
    stop(false);
  }
}

function drawDetections(detections) {
  const video = $("video");
  const canvas = $("overlay");
  canvas.width = video.videoWidth || 640;
  canvas.height = video.videoHeight || 480;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.lineWidth = 3;
  context.font = "16px system-ui";
  for (const d of detections || []) {
    const [x1, y1, x2, y2] = d.box;
    const colour = COLOURS[d.label] || "#e0e0e0";
    context.strokeStyle = colour;
    context.fillStyle = colour;
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    context.fillText(`${d.label} ${Math.round(d.score * 100)}%`, x1 + 4, Math.max(16, y1 - 4));
  }
}

function waitForIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ICE_GATHER_TIMEOUT_MS);
  });
}

// The purity reading compares the colour of the streak under the acid with the streak beside
// it, which a smeared frame gets wrong. Chrome starts a call at a low bitrate and ramps up
// over seconds, and lowers the resolution when it thinks bandwidth is short; so the answer
// asks for a high bitrate from the start, and the sender to keep its resolution.
function preferQuality(sdp) {
  const lines = sdp.split("\r\n");
  const rtpmap = lines.find((line) => /^a=rtpmap:\d+ VP8\/90000/.test(line));
  if (!rtpmap) return sdp;
  const payload = rtpmap.match(/^a=rtpmap:(\d+)/)[1];
  const rates = "x-google-start-bitrate=2500;x-google-min-bitrate=1000;x-google-max-bitrate=5000";
  const fmtp = lines.findIndex((line) => line.startsWith(`a=fmtp:${payload} `));
  if (fmtp >= 0) lines[fmtp] += `;${rates}`;
  else lines.splice(lines.indexOf(rtpmap) + 1, 0, `a=fmtp:${payload} ${rates}`);
  return lines.join("\r\n");
}

async function keepResolution(sender) {
  const parameters = sender.getParameters();
  parameters.degradationPreference = "maintain-resolution";
  for (const encoding of parameters.encodings || []) encoding.maxBitrate = 5000000;
  try { await sender.setParameters(parameters); } catch (error) { /* best effort */ }
}

async function startWebRtc(test) {
  const pc = new RTCPeerConnection({ iceServers: test.ice_servers });
  state.pc = pc;
  const senders = state.stream.getVideoTracks().map((track) => {
    track.contentHint = "detail";
    return pc.addTrack(track, state.stream);
  });
  const channel = pc.createDataChannel("purity");
  channel.onmessage = (event) => show(JSON.parse(event.data));
  const opened = new Promise((resolve, reject) => {
    channel.onopen = resolve;
    setTimeout(() => reject(new Error("the data channel did not open")), CHANNEL_OPEN_TIMEOUT_MS);
  });
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc);
  const answer = await api(test.webrtc_offer_url.slice(API.length), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }),
  });
  await pc.setRemoteDescription({ sdp: preferQuality(answer.sdp), type: "answer" });
  await Promise.all(senders.map(keepResolution));
  await opened;
}

function startWebSocket(test) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}${test.websocket_url}?access_token=${encodeURIComponent(state.token)}`;
  const ws = new WebSocket(url);
  state.ws = ws;
  const video = $("video");
  const canvas = document.createElement("canvas");
  let waiting = false;
  // One frame in flight at a time: the next is captured when the status for the last arrives,
  // so a slow network or server never builds a backlog.
  const sendFrame = () => {
    if (ws.readyState !== WebSocket.OPEN || waiting || !video.videoWidth) {
      if (ws.readyState === WebSocket.OPEN && !waiting) setTimeout(sendFrame, 50);
      return;
    }
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    waiting = true;
    canvas.toBlob((blob) => { if (ws.readyState === WebSocket.OPEN) ws.send(blob); }, "image/jpeg", JPEG_QUALITY);
  };
  ws.onopen = sendFrame;
  ws.onmessage = (event) => {
    const status = JSON.parse(event.data);
    waiting = false;
    show(status);
    if (!status.saved) sendFrame();
  };
  ws.onclose = (event) => { if (event.code !== 1000 && document.body.dataset.state !== "completed") say(`Connection closed (${event.reason || event.code})`); };
}

async function start() {
  say("");
  $("result").textContent = "-";
  delete document.body.dataset.result;
  const appraisalId = $("appraisal").value;
  const itemId = $("item").value;
  if (!appraisalId || !itemId) { say("Pick an appraisal and an item first."); return; }
  try {
    // Camera first: without media permission Chromium gathers no ICE candidates.
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    $("video").srcObject = state.stream;
    const headers = { "Content-Type": "application/json" };
    if ($("device").value) headers["X-Device-Id"] = $("device").value;
    const test = await api(`/appraisals/${appraisalId}/items/${itemId}/purity-sessions`, { method: "POST", headers });
    document.body.dataset.state = "testing";
    $("start").disabled = true;
    $("stop").disabled = false;
    if ($("transport").value === "auto" && window.RTCPeerConnection) {
      try {
        await startWebRtc(test);
        $("transport-used").textContent = "WebRTC";
        document.body.dataset.transport = "webrtc";
        return;
      } catch (error) {
        say(`WebRTC failed (${error.message}); using the WebSocket.`);
        if (state.pc) { state.pc.close(); state.pc = null; }
      }
    }
    $("transport-used").textContent = "WebSocket";
    document.body.dataset.transport = "websocket";
    startWebSocket(test);
  } catch (error) {
    say(error.message);
    stop(true);
  }
}

function stop(release) {
  if (state.pc) { setTimeout(((pc) => () => pc.close())(state.pc), 200); state.pc = null; }
  if (state.ws) { state.ws.close(); state.ws = null; }
  if (release !== false && state.stream) { state.stream.getTracks().forEach((t) => t.stop()); state.stream = null; }
  $("start").disabled = false;
  $("stop").disabled = true;
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("new-form").addEventListener("submit", createAppraisal);
  $("value").addEventListener("click", async () =>
    outcome(await act("valuation", $("amount").value ? { requested_amount: $("amount").value } : {})));
  $("approve").addEventListener("click", async () => outcome(await act("approve", { comment: $("comment").value })));
  $("reject").addEventListener("click", async () => outcome(await act("reject", { comment: $("comment").value })));
  $("certificate").addEventListener("click", issueCertificate);
  $("token-form").addEventListener("submit", (event) => { event.preventDefault(); setToken($("token").value.trim()); });
  $("appraisal").addEventListener("change", () => loadItems().catch((e) => say(e.message)));
  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", () => stop(true));
  $("signout").addEventListener("click", signOut);
  if (state.token) showPicker(); else $("pick").hidden = true;
});
