"""Extra networks that modify a loaded model: LoRA/LyCORIS, textual-inversion embeddings and hypernetworks.

* :mod:`.lora` (+ :mod:`.lora_formats`, :mod:`.names`): files in ``models/Lora``, ``<lora:name:te:unet>``,
  weight patches through :class:`modules.models.patcher.ModelPatcher`.
* :mod:`.embeddings` (+ :mod:`.embedding_images`): files in ``embeddings/``, the :class:`EmbeddingDatabase` and its
  ``lookup(token_ids, position)`` used by the prompt chunker.
* :mod:`.hypernetworks`: files in ``models/hypernetworks``, applied at attention k/v wrap points.
* :mod:`.hashes`: ``Lora hashes`` / ``TI hashes`` infotext values and their parsing.
"""
