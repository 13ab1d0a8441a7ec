"""How strong VITAL's feature distribution term should be: its distance and the logit against its weight.

For a few classes of the shared MobileNetV2, MACO draws the class's logit plus `weight` times
`objectives.feature_distribution` towards the class's dataset examples (`frontier.unit_examples`),
at several weights, and prints the whole picture's logit and its distance to the examples'
distributions (the term at the model input, summed over its layers). The frontier's weight is
the one past which the distance falls no further while the logit holds.

Run:    python benchmarks/vital_weight.py                       # about 10 min on 2 cores
"""

import argparse

import keras
import tensorflow as tf

import frontier
import maco_keras
from common import shared_dir
from maco_keras import objective as objective_lib
from maco_keras import objectives


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=[7, 455])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0])
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    if min(args.weights) < 0 or args.steps < 1:
        parser.error(f"expected weights >= 0 and positive --steps, received: --weights {args.weights} "
                     f"--steps {args.steps}")
    model = keras.models.load_model(shared_dir() / "models" / frontier.SUBJECTS["mobilenet_v2"][1])
    layers = frontier.distribution_layers(model)
    print("layers:", ", ".join(layers))
    print("| class | weight | logit | distance |\n|---|---|---|---|")
    for unit, examples in zip(args.classes, frontier.unit_examples(model, args.classes)):
        term = objective_lib.compile_objective(objectives.feature_distribution(model, layers, examples))
        for weight in args.weights:
            objective = objectives.logit(model, [unit]) + weight * objectives.feature_distribution(model, layers,
                                                                                                   examples)
            images, _ = maco_keras.maco(objective, steps=args.steps, crops=16, image_size=256, seed=0, verbose=False,
                                        values_range=frontier.VALUES_RANGE)
            whole = tf.image.resize(images, model.input_shape[1:3], antialias=True)
            score = term.scores(term.model(whole), [tf.constant(m) for m in term.masks],
                                tf.constant(term.multipliers), 1)[0]
            # The term weighs each layer 1 / (layers x its variance): times the layers, a sum of normalized distances.
            print(f"| {unit} | {weight:g} | {float(model(whole)[0, unit]):.1f} | {-float(score[0]) * len(layers):.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
