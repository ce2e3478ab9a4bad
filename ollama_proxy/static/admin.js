// Ask before a form marked data-confirm is sent (deleting a key, an alias, an override).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
