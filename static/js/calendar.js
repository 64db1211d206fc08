// The calendar: filters apply as soon as they change, and a booked session can
// be dragged onto a free time to move it (the move form's endpoint, so the
// same checks and messages apply; the card's version goes with it, so a booking
// someone else changed since the page was shown is not moved).
document.addEventListener("DOMContentLoaded", () => {
  const filters = document.querySelector("[data-testid='cal-filters']");
  if (filters) {
    filters.querySelectorAll("select").forEach((select) => {
      select.addEventListener("change", () => filters.requestSubmit());
    });
  }

  const grid = document.querySelector("[data-testid='calendar']");
  const errorBox = document.getElementById("cal-move-error");
  if (!grid || !errorBox) return;
  const csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  let dragged = null;

  grid.addEventListener("dragstart", (event) => {
    const card = event.target.closest("[data-move]");
    if (!card) return;
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.booking);
  });
  grid.addEventListener("dragend", () => {
    dragged = null;
    grid.querySelectorAll(".cal-drop").forEach((el) => el.classList.remove("cal-drop"));
  });
  grid.addEventListener("dragover", (event) => {
    const target = event.target.closest(".cal-free");
    if (!dragged || !target) return;
    event.preventDefault();
    target.classList.add("cal-drop");
  });
  grid.addEventListener("dragleave", (event) => {
    const target = event.target.closest(".cal-free");
    if (target) target.classList.remove("cal-drop");
  });
  grid.addEventListener("drop", async (event) => {
    const target = event.target.closest(".cal-free");
    if (!dragged || !target) return;
    event.preventDefault();
    const wanted = new URL(target.href, window.location.href).searchParams;
    const body = new URLSearchParams({
      date: wanted.get("date") || "",
      start_time: wanted.get("time") || "",
      practitioner: wanted.get("practitioner") || dragged.dataset.practitioner,
      room: wanted.get("room") || dragged.dataset.room,
      version: dragged.dataset.version || "",
    });
    const response = await fetch(dragged.dataset.move, {
      method: "POST",
      body,
      headers: { "X-CSRFToken": csrf },
      credentials: "same-origin",
    });
    if (response.ok) {
      window.location.reload();
      return;
    }
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const stale = page.querySelector("[data-testid='stale-edit']");
    if (stale) {
      showStale(stale);
    } else {
      const messages = [...page.querySelectorAll("[data-testid='form-error'], .invalid-feedback")]
        .map((el) => el.textContent.trim())
        .filter(Boolean);
      errorBox.textContent = messages.join(" ") || response.statusText;
    }
    errorBox.classList.remove("d-none");
    errorBox.scrollIntoView({ block: "nearest" });
  });

  // Someone changed the booking since this page was shown: say who, what it
  // is now, and offer the calendar as it is now (the server's own words).
  function showStale(stale) {
    const text = (el) => (el ? el.textContent.trim() : "");
    const message = document.createElement("p");
    message.className = "mb-2";
    message.dataset.testid = "stale-message";
    message.textContent = text(stale.querySelector("[data-testid='stale-message']"));
    const changes = document.createElement("ul");
    changes.className = "mb-2";
    stale.querySelectorAll("[data-testid='stale-change']").forEach((row) => {
      const [label, value] = row.querySelectorAll("th, td");
      const item = document.createElement("li");
      item.textContent = `${text(label)}: ${text(value)}`;
      changes.append(item);
    });
    const reload = document.createElement("button");
    reload.type = "button";
    reload.className = "btn btn-sm btn-outline-danger";
    reload.dataset.testid = "use-their-version";
    // A drag has nothing typed to lose: the link's short name, not its confirmation.
    const link = stale.querySelector("[data-testid='use-their-version']");
    reload.textContent = (link && link.dataset.label) || text(link);
    reload.addEventListener("click", () => window.location.reload());
    errorBox.replaceChildren(message, changes, reload);
  }
});
