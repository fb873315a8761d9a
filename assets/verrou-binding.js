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
(function (global) {
  "use strict";

  var DATABASE = "verrou-binding";
  var STORE = "keys";
  var KEY = "device";
  var encoder = new TextEncoder();

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

  async function proof(keyPair, header, challenge) {
    var input = part(header) + "." + part({ jti: challenge });
    var signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" }, keyPair.privateKey, encoder.encode(input));
    return input + "." + base64url(signature);
  }

  // Registers a new device key for the session; resolves to the session instructions.
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
    if (!response.ok) throw new Error("verrou: device registration refused (" + response.status + ")");
    var instructions = await response.json();
    await keys("readwrite", function (store) { return store.put(keyPair, KEY); });
    await keys("readwrite", function (store) { return store.put(instructions, "instructions"); });
    return instructions;
  }

  // Renews the bound cookie: asks for a challenge, signs it. Resolves to true when renewed.
  async function refresh() {
    var keyPair = await keys("readonly", function (store) { return store.get(KEY); });
    var instructions = await keys("readonly", function (store) { return store.get("instructions"); });
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
        return body.continue !== false;
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

  global.verrouBinding = { register: register, refresh: refresh, fetch: boundFetch };
})(window);
