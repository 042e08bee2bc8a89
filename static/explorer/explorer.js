// The little htmx cannot do: open the one dialog when #modal-content gets content.
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target && event.detail.target.id === "modal-content") {
    document.getElementById("modal").showModal();
  }
});
