// Filters and sorts the gallery the HTML already holds; without this script every card shows.
(function () {
  'use strict';
  var gallery = document.getElementById('gallery');
  var status = document.getElementById('gallery-status');
  if (!gallery || !status) {
    return;
  }
  var cards = Array.prototype.slice.call(gallery.querySelectorAll('figure.card'));
  var cells = Array.prototype.slice.call(document.querySelectorAll('button.cell'));
  var caption = function (m) {
    var table = document.querySelector('table.cm[data-m="' + m + '"] caption');
    return table ? table.textContent : 'model ' + m;
  };
  var className = function (i) {
    var head = document.querySelectorAll('table.cm thead th')[Number(i) + 1];
    return head ? head.textContent : String(i);
  };

  // Shows the cards `keep` accepts, most confident (in model m) first.
  function show(keep, m, words) {
    var shown = cards.filter(keep);
    var confidence = function (card) { return Number(card.getAttribute('data-c' + m)) || 0; };
    shown.sort(function (a, b) { return confidence(b) - confidence(a); });
    cards.forEach(function (card) { card.hidden = true; });
    shown.forEach(function (card) { card.hidden = false; gallery.appendChild(card); });
    status.textContent = words + ': ' + shown.length + (shown.length === 1 ? ' image' : ' images') +
      (shown.length > 1 ? ', most confident first.' : '.');
  }

  function press(cell) {
    cells.forEach(function (c) { c.setAttribute('aria-pressed', c === cell ? 'true' : 'false'); });
  }

  function mistakes(m) {
    press(null);
    show(function (card) {
      var p = card.getAttribute('data-p' + m);
      return p !== null && p !== card.getAttribute('data-t');
    }, m, 'Mistakes of the ' + caption(m));
  }

  cells.forEach(function (cell) {
    cell.setAttribute('aria-pressed', 'false');
    cell.setAttribute('aria-controls', 'gallery');
    cell.addEventListener('click', function () {
      var m = cell.getAttribute('data-m');
      var t = cell.getAttribute('data-t');
      var p = cell.getAttribute('data-p');
      press(cell);
      show(function (card) {
        return card.getAttribute('data-t') === t && card.getAttribute('data-p' + m) === p;
      }, m, caption(m) + ', true ' + className(t) + ', predicted ' + className(p));
      document.getElementById('gallery-h').scrollIntoView({ block: 'nearest' });
    });
    // Arrow keys move between the cells of one matrix, as in a spreadsheet.
    cell.addEventListener('keydown', function (event) {
      var moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      var move = moves[event.key];
      if (!move) {
        return;
      }
      var selector = 'button.cell[data-m="' + cell.getAttribute('data-m') + '"][data-t="' +
        (Number(cell.getAttribute('data-t')) + move[0]) + '"][data-p="' +
        (Number(cell.getAttribute('data-p')) + move[1]) + '"]';
      var next = document.querySelector(selector);
      if (next) {
        next.focus();
        event.preventDefault();
      }
    });
  });

  var showMistakes = document.getElementById('show-mistakes');
  var showAll = document.getElementById('show-all');
  if (showMistakes) {
    showMistakes.addEventListener('click', function () { mistakes(showMistakes.getAttribute('data-m')); });
  }
  if (showAll) {
    showAll.addEventListener('click', function () {
      press(null);
      show(function () { return true; }, 0, 'All evaluated images');
    });
  }
  mistakes('0');
})();
