#include "page.h"

namespace adaptertune::serve {

const char* const kTryPage = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>adaptertune serve</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #1d2330; }
  h1 { font-size: 1.3rem; margin-bottom: .2rem; }
  p.note { color: #5b6474; margin-top: 0; }
  label { display: block; margin: .8rem 0 .2rem; font-weight: 600; }
  select, textarea, input { width: 100%; box-sizing: border-box; font: inherit; padding: .4rem; }
  textarea { height: 5rem; }
  button { margin-top: .9rem; padding: .45rem 1.4rem; font: inherit; cursor: pointer; }
  #result { margin-top: 1.2rem; }
  #answer { font-size: 1.1rem; margin-bottom: .6rem; }
  .row { display: flex; align-items: center; gap: .6rem; margin: .25rem 0; }
  .row .name { width: 9rem; overflow: hidden; text-overflow: ellipsis; }
  .row .track { flex: 1; background: #e8ebf0; height: 1.1rem; border-radius: 3px; }
  .row .fill { background: #3b6fd8; height: 100%; border-radius: 3px; }
  .row .value { width: 4.5rem; text-align: right; font-variant-numeric: tabular-nums; }
  .error { color: #b3261e; }
</style>
</head>
<body>
<h1>adaptertune serve</h1>
<p class="note">One base, many tasks: pick a task, type a text, see what its adapter says.</p>
<p class="note" id="model"></p>
<label for="task">Task</label>
<select id="task"><option value="">(no task: the plain base)</option></select>
<label for="text">Text</label>
<textarea id="text" placeholder="a gorgeous, witty movie"></textarea>
<label for="pair">Second text (for sentence-pair tasks, or the context a question is answered from; may stay empty otherwise)</label>
<input id="pair" type="text">
<button id="go" type="button">Predict</button>
<div id="result" aria-live="polite"></div>
<script>
"use strict";
const taskSelect = document.getElementById("task");
const result = document.getElementById("result");

function show(prediction) {
  result.textContent = "";
  const answer = document.createElement("div");
  answer.id = "answer";
  if (prediction.answer !== undefined) {
    answer.textContent = prediction.answer === ""
        ? "no answer (score of no answer " + prediction.null_score.toFixed(4) + ")"
        : "answer: " + prediction.answer + " (score " + prediction.score.toFixed(4) + ")";
    answer.dataset.answer = prediction.answer;
  } else if (prediction.score !== undefined) {
    answer.textContent = "score: " + prediction.score.toFixed(4);
    answer.dataset.score = prediction.score;
  } else {
    answer.textContent = "label: " + prediction.label;
    answer.dataset.label = prediction.label;
  }
  result.appendChild(answer);
  for (const [name, p] of Object.entries(prediction.probabilities || {})) {
    const row = document.createElement("div");
    row.className = "row";
    row.dataset.label = name;
    row.dataset.probability = p;
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = (100 * p).toFixed(1) + "%";
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = (100 * p).toFixed(1) + " %";
    row.append(label, track, value);
    result.appendChild(row);
  }
}

function fail(message) {
  result.textContent = "";
  const error = document.createElement("div");
  error.className = "error";
  error.id = "error";
  error.textContent = message;
  result.appendChild(error);
}

// What the base is, and what a request without a task gets from it (GET /v1/model).
function describeBase(model) {
  const c = model.config;
  document.getElementById("model").textContent = "Base: " + model.model + " (" +
      c.num_hidden_layers + " layers, hidden size " + c.hidden_size + "), " + model.precision +
      " on " + model.device + "; " + model.tasks.length + " task" +
      (model.tasks.length === 1 ? "" : "s") + ".";
  const head = model.no_task;
  taskSelect.options[0].textContent = "(no task: the plain base, " +
      (head.problem_type === "question_answering" ? "its span head"
          : !head.trained ? "an untrained head"
          : head.labels ? "its head (" + head.labels.join(", ") + ")" : "its head (score)") + ")";
}

async function loadTasks() {
  describeBase(await (await fetch("/v1/model")).json());
  const response = await fetch("/v1/tasks");
  const body = await response.json();
  for (const task of body.tasks) {
    const option = document.createElement("option");
    option.value = task.name;
    option.textContent = task.name + (task.labels ? " (" + task.labels.join(", ") + ")"
        : task.problem_type === "question_answering" ? " (question answering)" : " (score)");
    taskSelect.appendChild(option);
  }
  if (body.tasks.length > 0) taskSelect.value = body.tasks[0].name;
  document.body.dataset.ready = "true";
}

document.getElementById("go").addEventListener("click", async () => {
  const request = { text: document.getElementById("text").value };
  if (taskSelect.value) request.task = taskSelect.value;
  const pair = document.getElementById("pair").value;
  if (pair) request.text_pair = pair;
  try {
    const response = await fetch("/v1/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
    const body = await response.json();
    if (!response.ok) fail(response.status + ": " + body.error); else show(body);
  } catch (error) {
    fail(String(error));
  }
});

loadTasks().catch((error) => fail("could not list the tasks: " + error));
</script>
</body>
</html>
)PAGE";

}  // namespace adaptertune::serve
