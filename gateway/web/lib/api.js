// The API client: the session's bearer token (sessionStorage), JSON requests, the API's error
// shape as ApiError.

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && body.message) || `the server answered ${status}`;
    super(message);
    this.status = status;
    this.code = (body && body.error) || "error";
    this.detail = body ? body.detail : null;
  }

  // One line for the user: the message, and for invalid input the fields and their problems.
  describe() {
    let text = this.message;
    if (Array.isArray(this.detail) && this.detail.length) {
      const parts = this.detail
        .filter((d) => d && typeof d === "object" && "problem" in d)
        .map((d) => (d.field ? `${d.field}: ${d.problem}` : String(d.problem)));
      if (parts.length) text += ` (${parts.join("; ")})`;
    }
    return text;
  }
}

export class Session {
  constructor(name) {
    this.key = `sitedesk.${name}.token`;
    this.onExpired = () => {};
  }

  get token() {
    return sessionStorage.getItem(this.key);
  }

  set token(value) {
    if (value) sessionStorage.setItem(this.key, value);
    else sessionStorage.removeItem(this.key);
  }

  async login(email, password) {
    const form = new URLSearchParams({ username: email, password });
    const resp = await fetch(`${API}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: form,
    });
    const body = await readJson(resp);
    if (!resp.ok) throw new ApiError(resp.status, body);
    this.token = body.access_token;
    return body;
  }

  // Revoke the token on the server (best effort: it expires anyway) and forget it here.
  async logout() {
    const token = this.token;
    this.token = null;
    if (!token) return;
    try {
      await fetch(`${API}/auth/logout`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
      });
    } catch {
      // offline: the token still expires on its own
    }
  }

  // A request with the bearer token: the response when it is 2xx, else ApiError with the
  // API's error shape.
  // `json` is sent as JSON; `body` as it is (a FormData sets its own multipart type).
  async request(method, path, { json, body, headers = {}, accept = "application/json" } = {}) {
    const init = { method, headers: { Accept: accept, ...headers } };
    if (this.token) init.headers.Authorization = `Bearer ${this.token}`;
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body;
    }
    let resp;
    try {
      resp = await fetch(`${API}${path}`, init);
    } catch {
      throw new ApiError(0, { error: "network", message: "the server can not be reached" });
    }
    if (resp.status === 401) {
      this.token = null;
      this.onExpired();
    }
    if (!resp.ok) throw new ApiError(resp.status, await readJson(resp));
    return resp;
  }

  // A JSON request with the bearer token; throws ApiError with the API's error shape.
  async api(method, path, options = {}) {
    return readJson(await this.request(method, path, options));
  }

  // A download that needs the token (a link can not send it): the body as a Blob, to offer
  // with an object URL (see download()).
  async blob(path, accept = "*/*") {
    const resp = await this.request("GET", path, { accept });
    return resp.blob();
  }

  get(path) {
    return this.api("GET", path);
  }

  post(path, json, headers) {
    return this.api("POST", path, { json, headers });
  }

  put(path, json) {
    return this.api("PUT", path, { json });
  }
}

async function readJson(resp) {
  try {
    return await resp.json();
  } catch {
    return null;
  }
}

