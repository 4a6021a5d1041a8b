// What both pages share: the hash routes, the log-in form, the role check, log-out and the
// live stream feeding the client store.
import { debounce, showError, onSubmit } from "./dom.js";
import { LiveStream } from "./live.js";

// The hash route: "#/tickets/TT-000001" -> ["tickets", "TT-000001"].
export function route() {
  return location.hash
    .replace(/^#\/?/, "")
    .split("/")
    .filter(Boolean)
    .map((p) => decodeURIComponent(p));
}

export function ticketHref(number) {
  return `#/tickets/${encodeURIComponent(number)}`;
}

// What both pages share: the log-in form, the role check, log-out, the live stream and the
// hash routing. A page gives its `session`, `refuse(me)` (a message when this page is not
// for that user, else null), `enter(me)` (fill the page; its first load), `store` (the client
// store every live event goes to, by topic), `refresh()` (reload everything: only when the
// stream says events were missed, a `reset`), `show()` (render the route) and optional
// `leave()`.
export function runPage({ session, refuse, enter, store, refresh, show, leave = () => {} }) {
  const $ = (id) => document.getElementById(id);
  const page = { me: null, live: null };

  function showLogin(message) {
    if (page.live) page.live.stop();
    page.live = null;
    page.me = null;
    leave();
    $("app-view").hidden = true;
    $("logout").hidden = true;
    $("who").textContent = "";
    $("login-view").hidden = false;
    showError($("login-error"), message ? new Error(message) : null);
    $("login-email").focus();
  }

  async function start() {
    let me;
    try {
      me = await session.get("/me");
    } catch (err) {
      if (err.status !== 401) showLogin(err.describe ? err.describe() : String(err));
      return;
    }
    const refusal = refuse(me);
    if (refusal) {
      session.token = null;
      showLogin(refusal);
      return;
    }
    page.me = me;
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("logout").hidden = false;
    $("who").textContent = me.name;
    const reload = debounce(refresh, 100);
    page.live = new LiveStream(session, $("live"), (event) => {
      if (event.topic === "reset") reload();
      else store.emit(event);
    });
    page.live.start();
    await enter(me);
  }

  session.onExpired = () => showLogin("Your session has ended; please log in again.");
  onSubmit($("login-form"), $("login-error"), async (data) => {
    await session.login(String(data.get("email")), String(data.get("password")));
    $("login-form").reset();
    await start();
  });
  $("logout").addEventListener("click", async () => {
    await session.logout();
    location.hash = "#/";
    showLogin();
  });
  window.addEventListener("hashchange", () => {
    if (page.me) show();
  });
  if (session.token) start();
  else showLogin();
  return page;
}
