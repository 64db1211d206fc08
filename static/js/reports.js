// The reports' charts, drawn with Chart.js from the figures the page carries
// in its "report-charts" JSON element: the same figures as the table beside
// each chart, which is what screen readers read (the canvases are hidden from
// them). No figure is computed here.
document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("report-charts");
  const Chart = window.Chart;
  if (!source || !Chart) return;
  const figures = JSON.parse(source.textContent);

  // Colours told apart with any colour vision (Okabe and Ito), dark enough on white.
  const palette = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#1f6f78", "#8a6d00", "#5b6b70", "#000000"];
  const text = "#212529";
  Chart.defaults.animation = false;
  Chart.defaults.color = text;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.maintainAspectRatio = false;

  const draw = (id, config) => {
    const canvas = document.getElementById(id);
    if (canvas) new Chart(canvas, config);
  };
  const percent = (value) => `${value}%`;

  draw("chart-sessions", {
    type: "bar",
    data: {
      labels: figures.sessions.labels,
      datasets: figures.sessions.series.map((series, i) => ({
        label: series.name,
        data: series.data,
        backgroundColor: palette[i % palette.length],
      })),
    },
    options: {
      scales: {
        x: { stacked: true, ticks: { autoSkip: true, maxRotation: 0 } },
        y: {
          stacked: true,
          beginAtZero: true,
          grace: "5%",
          ticks: { precision: 0 },
          title: { display: true, text: figures.sessions.axis },
        },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });

  const noShows = figures.noShows;
  draw("chart-no-shows", {
    type: "bar",
    data: {
      labels: noShows.labels,
      datasets: [
        {
          label: noShows.axis,
          data: noShows.data,
          // The whole clinic, last, stands apart from the practitioners.
          backgroundColor: noShows.labels.map((_, i) => (i === noShows.labels.length - 1 ? text : palette[1])),
        },
      ],
    },
    options: {
      indexAxis: "y",
      scales: {
        x: {
          beginAtZero: true,
          suggestedMax: 10,
          grace: "5%",
          ticks: { callback: percent },
          title: { display: true, text: noShows.axis },
        },
      },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: (item) => percent(item.formattedValue) } },
      },
    },
  });

  draw("chart-courses", {
    type: "bar",
    data: {
      labels: figures.courses.labels,
      datasets: [
        {
          label: figures.courses.axis,
          data: figures.courses.data,
          backgroundColor: [palette[2], palette[1], palette[0]],
        },
      ],
    },
    options: {
      indexAxis: "y",
      scales: {
        x: {
          beginAtZero: true,
          grace: "5%",
          ticks: { precision: 0 },
          title: { display: true, text: figures.courses.axis },
        },
      },
      plugins: { legend: { display: false } },
    },
  });
});
