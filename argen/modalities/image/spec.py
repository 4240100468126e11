"""`argen image`: every flag once (see argen/modalities/spec.py)."""

from __future__ import annotations

from typing import ClassVar, Literal

from argen.modalities.spec import GenerationSpec, flag


class ImageSpec(GenerationSpec):
    modality: ClassVar[str] = "image"
    prompt_help: ClassVar[str] = ("The caption, e.g. 'a red circle in the top left'; for ImageNet class models a class "
                                  "id or name (repeat for several prompts).")

    class_label: list[str] | None = flag(None, "--class-label", metavar="ID|NAME",
                                         help="ImageNet class for VAR/LlamaGen models: an id (207) or a name "
                                              "(golden_retriever); repeat for one per image.")
    negative_prompt: str | None = flag(None, "--negative-prompt", metavar="TEXT",
                                       help="What the unconditional branch of guidance reads (text-to-image models).")
    sampler: Literal["next-scale", "next-token"] | None = flag(
        None, "--sampler", metavar="next-scale|next-token", help="Picks the bundled model of that kind (default: shapes-next-token).")
    cfg_schedule: Literal["constant", "linear", "var"] | None = flag(
        None, "--cfg-schedule", metavar="constant|linear|var",
        help="linear ramps guidance from 1 to --cfg over the tokens or scales; var from 1 to 1 + --cfg (VAR's ramp). "
             "Default: the model's.")
    cfg_interval: float | None = flag(None, "--cfg-interval", metavar="K",
                                      help="LlamaGen's cfg_interval: guide tokens 0..K+1 only; -1 guides all.", ge=-1e9, le=1e9)
    more_smooth: bool = flag(False, "--more-smooth", help="VAR models: VAR's more_smooth sampling (a Gumbel-softmax "
                             "blend of codes handed to each next scale; sharper detail, not used for VAR's FID figures).")
    inpaint: str | None = flag(None, "--inpaint", metavar="IMAGE", help="Keep this image outside the mask.")
    mask: str | None = flag(None, "--mask", metavar="MASK", help="White where --inpaint's image is regenerated.")
    grid: bool = flag(False, "--grid", help="Also write a contact sheet of all the images (NAME-grid.png).", recipe=False)

    @classmethod
    def default_model(cls, options: dict) -> str | None:
        return {"next-scale": "shapes-next-scale", "next-token": "shapes-next-token"}.get(options.get("sampler"))

    def load_options(self) -> dict:
        return {**super().load_options(), "sampler": self.sampler}
