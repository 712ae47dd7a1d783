// retryd dashboard: light progressive enhancement. Every page works without this script.
// It shows times in the viewer's zone and refreshes the overview's live region.
"use strict";

function localTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) {
      el.title = el.textContent;  // the UTC text stays available on hover
      el.textContent = format.format(when);
    }
  }
}

function showZone() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (const el of document.querySelectorAll("[data-zone]")) el.textContent = zone || "your zone";
}

function liveRefresh() {
  const live = document.querySelector("[data-live]");
  const toggle = document.querySelector("[data-live-toggle]");
  if (!live || !toggle) return;
  let paused = false;
  toggle.hidden = false;
  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.setAttribute("aria-pressed", String(!paused));
    toggle.textContent = paused ? "Resume live refresh" : "Pause live refresh";
  });
  const seconds = Number(live.dataset.live) || 5;
  setInterval(async () => {
    if (paused || document.hidden) return;
    try {
      const reply = await fetch(location.href, { headers: { "Accept": "text/html" } });
      const page = new DOMParser().parseFromString(await reply.text(), "text/html");
      const fresh = page.querySelector("[data-live]") || page.querySelector("main");
      const banner = page.querySelector(".banner");
      live.replaceChildren(...fresh.childNodes);
      setBanner(banner ? banner.textContent : null);
      localTimes(live);
    } catch (error) {
      setBanner("The dashboard cannot be reached; retrying.");
    }
  }, seconds * 1000);
}

function setBanner(text) {
  let banner = document.querySelector(".banner");
  if (!text) { if (banner) banner.remove(); return; }
  if (!banner) {
    banner = document.createElement("div");
    banner.className = "banner";
    banner.setAttribute("role", "alert");
    document.querySelector("main").before(banner);
  }
  banner.textContent = text;
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  showZone();
  liveRefresh();
});
