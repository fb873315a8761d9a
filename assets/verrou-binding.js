// verrou device binding for browsers without Device Bound Session Credentials.
//
// At the second factor the page receives a challenge and calls `verrouBinding.register`: it
// creates a P-256 key pair with WebCrypto, NON-EXTRACTABLE (no script, this one included, can
// read the private key out), keeps it in IndexedDB, and sends the server an ES256 proof over
// the challenge with the public key. The server then issues a short-lived bound cookie.
// `verrouBinding.refresh` renews that cookie by signing a fresh server challenge, and
// `verrouBinding.fetch` does so by itself when a request is refused with 401.
//
// The proof is the JWT a DBSC browser sends (header alg ES256, typ dbsc+jwt, jwk; payload
// jti = the challenge), and WebCrypto's ECDSA signature is already the JOSE r||s form, so the
// server handles both with the same code. Served as-is by the portal; no dependencies.
//
// Loaded with data attributes on its <script> tag, it also runs by itself (no inline script,
// so a strict Content-Security-Policy holds):
// - `data-verrou-register="<challenge>" data-verrou-registration="<path>"
//   data-verrou-next="<path>" data-verrou-wait="<ms>"`: the page after the second factor.
//   Waits `wait` ms so that a browser with DBSC, which registers by itself as soon as the
//   response arrives, binds first; then registers (a 409 means the session is bound already,
//   by the browser: the fallback stands down) and goes on to `next`. On failure it shows the
//   element `#verrou-binding-failed`.
// - `data-verrou-retry`: the page a navigation gets when the bound cookie expired. Renews it,
//   then submits `#verrou-retry-form` (the request's form, kept by the server) or reloads;
//   shows `#verrou-retry-failed` when it cannot renew, `#verrou-retry-resubmit` when the form
//   could not be kept.
// - no attribute: any other page. While the page is open, renews the bound cookie before it
//   expires, so neither the next navigation nor a form submission meets an expired cookie.
(function (global) {
  "use strict";

  var DATABASE = "verrou-binding";
  var STORE = "keys";
  var KEY = "device";
  // Renew when this share of the bound cookie's life has passed.
  var RENEW_AT = 0.7;
  // The header that tells this script the bound cookie's lifetime, in seconds.
  var MAX_AGE_HEADER = "Verrou-Bound-Max-Age";
  var encoder = new TextEncoder();
  var me = global.document && global.document.currentScript;

  function base64url(bytes) {
    var view = new Uint8Array(bytes);
    var text = "";
    for (var i = 0; i < view.length; i++) text += String.fromCharCode(view[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function part(value) {
    return base64url(encoder.encode(JSON.stringify(value)));
  }

  function keys(mode, action) {
    return new Promise(function (resolve, reject) {
      var open = indexedDB.open(DATABASE, 1);
      open.onupgradeneeded = function () { open.result.createObjectStore(STORE); };
      open.onerror = function () { reject(open.error); };
      open.onsuccess = function () {
        var tx = open.result.transaction(STORE, mode);
        var request = action(tx.objectStore(STORE));
        tx.oncomplete = function () { resolve(request.result); };
        tx.onerror = function () { reject(tx.error); };
      };
    });
  }

  function put(name, value) {
    return keys("readwrite", function (store) { return store.put(value, name); });
  }

  function get(name) {
    return keys("readonly", function (store) { return store.get(name); });
  }

  async function proof(keyPair, header, challenge) {
    var input = part(header) + "." + part({ jti: challenge });
    var signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" }, keyPair.privateKey, encoder.encode(input));
    return input + "." + base64url(signature);
  }

  // Notes when the bound cookie was renewed and how long it lives, for `keepFresh`.
  async function renewed(response) {
    var maxAge = parseInt(response.headers.get(MAX_AGE_HEADER) || "", 10);
    if (maxAge > 0) await put("renewed", { at: Date.now(), maxAge: maxAge });
  }

  // Registers a new device key for the session; resolves to the session instructions, or to
  // null when the session is bound already (by the browser's own DBSC): this browser's stored
  // key, if any, belongs to no session now and is forgotten.
  async function register(challenge, registrationPath) {
    var keyPair = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
    var jwk = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
    var header = { alg: "ES256", typ: "dbsc+jwt", jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } };
    var response = await global.fetch(registrationPath, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Secure-Session-Response": await proof(keyPair, header, challenge) },
    });
    if (response.status === 409) {
      await keys("readwrite", function (store) { return store.clear(); });
      return null;
    }
    if (!response.ok) throw new Error("verrou: device registration refused (" + response.status + ")");
    var instructions = await response.json();
    await put(KEY, keyPair);
    await put("instructions", instructions);
    await renewed(response);
    return instructions;
  }

  // Renews the bound cookie: asks for a challenge, signs it. Resolves to true when renewed.
  async function refresh() {
    var keyPair = await get(KEY);
    var instructions = await get("instructions");
    if (!keyPair || !instructions) return false;
    var challenge = null;
    for (var attempt = 0; attempt < 3; attempt++) {
      var headers = { "Sec-Secure-Session-Id": instructions.session_identifier };
      if (challenge) {
        headers["Secure-Session-Response"] = await proof(keyPair, { alg: "ES256", typ: "dbsc+jwt" }, challenge);
      }
      var response = await global.fetch(instructions.refresh_url, {
        method: "POST", credentials: "same-origin", headers: headers,
      });
      var offered = response.headers.get("Secure-Session-Challenge");
      var match = offered && /^"([^"]+)"/.exec(offered);
      if (response.status === 200) {
        var body = await response.json().catch(function () { return {}; });
        if (body.continue === false) return false;
        await renewed(response);
        return true;
      }
      if (response.status !== 403 || !match) return false;
      challenge = match[1];
    }
    return false;
  }

  // fetch, renewing the bound cookie once when the server answers 401.
  async function boundFetch(url, init) {
    var response = await global.fetch(url, init);
    if (response.status === 401 && (await refresh())) return global.fetch(url, init);
    return response;
  }

  // While the page is open, renews the bound cookie when RENEW_AT of its life has passed
  // (checked again whenever the tab becomes visible: background timers are throttled).
  var timer = null;
  async function keepFresh() {
    if (timer) global.clearTimeout(timer);
    timer = null;
    var state = await get("renewed").catch(function () { return null; });
    if (!state || !(await get(KEY).catch(function () { return null; }))) return;
    var due = state.at + state.maxAge * 1000 * RENEW_AT - Date.now();
    if (due > 0) {
      timer = global.setTimeout(keepFresh, due);
      return;
    }
    if (await refresh().catch(function () { return false; })) {
      timer = global.setTimeout(keepFresh, state.maxAge * 1000 * RENEW_AT);
    }
  }

  function show(id) {
    var element = global.document.getElementById(id);
    if (element) element.hidden = false;
  }

  function sleep(ms) {
    return new Promise(function (resolve) { global.setTimeout(resolve, ms); });
  }

  // The page after the second factor: let DBSC go first, then bind, then go on.
  async function bindThenContinue(data) {
    try {
      await sleep(parseInt(data.verrouWait || "0", 10) || 0);
      await register(data.verrouRegister, data.verrouRegistration);
      global.location.replace(data.verrouNext || "/");
    } catch (e) {
      show("verrou-binding-failed");
    }
  }

  // The page a navigation gets when its bound cookie expired: renew, then retry the request
  // once (a second expiry within a few seconds means renewing does not help here).
  async function renewThenRetry() {
    var mark = "verrou-retry:" + global.location.href;
    var last = parseInt(global.sessionStorage.getItem(mark) || "0", 10);
    var ok = Date.now() - last > 10000 && (await refresh().catch(function () { return false; }));
    if (!ok) {
      show("verrou-retry-failed");
      return;
    }
    global.sessionStorage.setItem(mark, String(Date.now()));
    var form = global.document.getElementById("verrou-retry-form");
    if (form) {
      form.submit();
    } else if (global.document.getElementById("verrou-retry-resubmit")) {
      show("verrou-retry-resubmit");
    } else {
      global.location.reload();
    }
  }

  function onReady(action) {
    if (global.document.readyState === "loading") {
      global.document.addEventListener("DOMContentLoaded", action);
    } else {
      action();
    }
  }

  global.verrouBinding = { register: register, refresh: refresh, fetch: boundFetch, keepFresh: keepFresh };

  var data = (me && me.dataset) || {};
  if (data.verrouRegister !== undefined) {
    onReady(function () { bindThenContinue(data); });
  } else if (data.verrouRetry !== undefined) {
    onReady(renewThenRetry);
  } else if (global.document) {
    onReady(function () { keepFresh(); });
    global.document.addEventListener("visibilitychange", function () {
      if (global.document.visibilityState === "visible") keepFresh();
    });
  }
  if (global.document) {
    onReady(function () {
      var back = global.document.querySelectorAll("[data-verrou-back]");
      for (var i = 0; i < back.length; i++) {
        back[i].addEventListener("click", function () { global.history.back(); });
      }
    });
  }
})(window);
