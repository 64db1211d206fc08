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
  keyboard(grid);
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

// The grid by keyboard. Without this script every free time is a link in the
// Tab order, dozens before the first booking. With it, Tab goes from booking to
// booking (the day links above a week and the free times leave the Tab order);
// the arrow keys move between the grid's links, free times and bookings alike,
// by cell: up and down a column, left and right along a row (through a cell's
// bookings one by one), Home and End to the row's ends, Page Up and Page Down an
// hour at a time; Enter books the free time or opens the booking. From the
// scrolling box itself, an arrow key enters the grid at its first link.
function keyboard(grid) {
  const table = grid.querySelector("table.cal-grid");
  if (!table) return;
  const rows = [...table.querySelectorAll("thead tr, tbody tr")].filter(
    (row) => !row.classList.contains("cal-widths") && !row.classList.contains("cal-list-row")
  );
  const cells = rows.map((row) =>
    [...row.children].filter((cell) => !cell.classList.contains("cal-time-col"))
  );
  // Hidden links (the free times of a week read as a list of days) are passed over.
  const shown = (link) => link.getClientRects().length > 0;
  const linksOf = (cell) => (cell ? [...cell.querySelectorAll("a[href]")].filter(shown) : []);
  table.querySelectorAll("thead a[href], a.cal-free").forEach((link) => {
    link.tabIndex = -1;
  });
  const hint = document.getElementById("cal-keys");
  if (hint) {
    hint.hidden = false;
    grid.setAttribute("aria-describedby", hint.id);
  }

  function where(link) {
    const cell = link.closest("td, th");
    for (let r = 0; r < cells.length; r += 1) {
      const c = cells[r].indexOf(cell);
      if (c >= 0) return { r, c, i: linksOf(cell).indexOf(link) };
    }
    return null;
  }
  function firstIn(r, c, step, last) {
    // The first cell with a link from (r, c) on, `step` rows at a time.
    for (let row = r; row >= 0 && row < cells.length; row += step) {
      const links = linksOf(cells[row][c]);
      if (links.length) return last ? links[links.length - 1] : links[0];
    }
    return null;
  }
  function along(r, from, step) {
    for (let c = from; c >= 0 && c < cells[r].length; c += step) {
      const links = linksOf(cells[r][c]);
      if (links.length) return step > 0 ? links[0] : links[links.length - 1];
    }
    return null;
  }
  function firstLink() {
    for (let r = 0; r < cells.length; r += 1) {
      const found = along(r, 0, 1);
      if (found && !found.closest("thead")) return found;
    }
    return null;
  }
  const HOUR = 4; // rows of 15 minutes

  grid.addEventListener("keydown", (event) => {
    if (event.altKey || event.metaKey || event.shiftKey) return;
    const keys = ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown"];
    if (!keys.includes(event.key)) return;
    let target = null;
    if (event.target === grid) {
      if (event.key === "ArrowDown" || event.key === "ArrowRight" || event.key === "Home") {
        target = firstLink();
      }
      // Nothing to enter (a day with nothing to book): the keys scroll the box.
      if (!target) return;
    } else {
      const link = event.target.closest("a[href]");
      const at = link && grid.contains(link) ? where(link) : null;
      if (!at) return;
      const here = linksOf(cells[at.r][at.c]);
      switch (event.key) {
        case "ArrowRight":
          target = here[at.i + 1] || along(at.r, at.c + 1, 1);
          break;
        case "ArrowLeft":
          target = here[at.i - 1] || along(at.r, at.c - 1, -1);
          break;
        case "ArrowDown":
          target = firstIn(at.r + 1, at.c, 1, false);
          break;
        case "ArrowUp":
          target = firstIn(at.r - 1, at.c, -1, false);
          break;
        case "PageDown":
          target = firstIn(Math.min(at.r + HOUR, cells.length - 1), at.c, 1, false);
          break;
        case "PageUp":
          target = firstIn(Math.max(at.r - HOUR, 0), at.c, -1, false);
          break;
        case "Home":
          target = event.ctrlKey ? firstLink() : along(at.r, 0, 1);
          break;
        case "End":
          target = event.ctrlKey
            ? firstIn(cells.length - 1, at.c, -1, true)
            : along(at.r, cells[at.r].length - 1, -1);
          break;
        default:
          break;
      }
    }
    // The page does not scroll under the keys the grid uses, even at its edges.
    event.preventDefault();
    if (target) target.focus();
  });
}
