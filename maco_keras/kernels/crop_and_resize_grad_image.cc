// MacoCropAndResizeGradImage: the gradient of bilinear CropAndResize with respect to the
// image, deterministic and multi-threaded, for CPU.
//
// TensorFlow's CPU kernel shards the boxes over threads, so two crops of one image add
// into the same pixels at once (a race). Here a thread owns whole bands of image rows
// instead, and adds the boxes into its band in box order. Each box is accumulated alone,
// from zero and in the crop's scan order, before it is added: the sums, and so the bits,
// are those of TF's kernel called on one box of each image at a time and summed in box
// order, which is maco_keras' fallback (see maco_keras/augmentation.py).
//
// Built on first use by maco_keras/native.py, with the installed TensorFlow's flags.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace maco_keras {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("MacoCropAndResizeGradImage")
    .Input("grads: float")       // (boxes, crop height, crop width, channels)
    .Input("boxes: float")       // (boxes, 4): y1, x1, y2, x2 in [0, 1] image coordinates
    .Input("box_index: int32")   // (boxes,): the image each box is cut from
    .Attr("num_images: int >= 1")
    .Attr("image_height: int >= 1")
    .Attr("image_width: int >= 1")
    .Output("image_gradient: float")  // (num_images, image_height, image_width, channels)
    .SetShapeFn([](InferenceContext* c) {
      int num_images, height, width;
      TF_RETURN_IF_ERROR(c->GetAttr("num_images", &num_images));
      TF_RETURN_IF_ERROR(c->GetAttr("image_height", &height));
      TF_RETURN_IF_ERROR(c->GetAttr("image_width", &width));
      ShapeHandle grads;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &grads));
      c->set_output(0, c->MakeShape({num_images, height, width, c->Dim(grads, 3)}));
      return absl::OkStatus();
    });

namespace {

// Where output sample i of a crop reads along one axis: rows/columns `low` and `high`,
// weighted 1 - lerp and lerp. Same float expressions as CropAndResize, so same positions.
struct Tap {
  bool inside;
  int low, high;
  float lerp;
};

void PlaceTaps(float start, float end, int in_size, int out_size, Tap* taps) {
  const float scale = out_size > 1 ? (end - start) * (in_size - 1) / (out_size - 1) : 0;
  for (int i = 0; i < out_size; ++i) {
    const float in = out_size > 1 ? start * (in_size - 1) + i * scale : 0.5 * (start + end) * (in_size - 1);
    Tap& tap = taps[i];
    tap.inside = !(in < 0 || in > in_size - 1);  // samples outside the image have no gradient
    if (!tap.inside) continue;
    tap.low = floorf(in);
    tap.high = ceilf(in);
    tap.lerp = in - tap.low;
  }
}

}  // namespace

class CropAndResizeGradImageOp : public OpKernel {
 public:
  explicit CropAndResizeGradImageOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("num_images", &num_images_));
    OP_REQUIRES_OK(context, context->GetAttr("image_height", &height_));
    OP_REQUIRES_OK(context, context->GetAttr("image_width", &width_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& grads_tensor = context->input(0);
    const Tensor& boxes_tensor = context->input(1);
    const Tensor& index_tensor = context->input(2);
    OP_REQUIRES(context, grads_tensor.dims() == 4,
                tensorflow::errors::InvalidArgument("expected grads of rank 4, received shape ",
                                                    grads_tensor.shape().DebugString()));
    const int num_boxes = grads_tensor.dim_size(0);
    const int crop_height = grads_tensor.dim_size(1);
    const int crop_width = grads_tensor.dim_size(2);
    const int depth = grads_tensor.dim_size(3);
    OP_REQUIRES(context, boxes_tensor.dims() == 2 && boxes_tensor.dim_size(0) == num_boxes &&
                             boxes_tensor.dim_size(1) == 4,
                tensorflow::errors::InvalidArgument("expected boxes of shape (", num_boxes, ", 4), received ",
                                                    boxes_tensor.shape().DebugString()));
    OP_REQUIRES(context, index_tensor.dims() == 1 && index_tensor.dim_size(0) == num_boxes,
                tensorflow::errors::InvalidArgument("expected box_index of shape (", num_boxes, "), received ",
                                                    index_tensor.shape().DebugString()));
    const float* grads = grads_tensor.flat<float>().data();
    const float* boxes = boxes_tensor.flat<float>().data();
    const int32_t* box_index = index_tensor.flat<int32_t>().data();
    for (int b = 0; b < num_boxes; ++b) {
      OP_REQUIRES(context, box_index[b] >= 0 && box_index[b] < num_images_,
                  tensorflow::errors::InvalidArgument("expected box_index in [0, ", num_images_, "), received ",
                                                      box_index[b], " for box ", b));
    }
    Tensor* output_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({num_images_, height_, width_, depth}),
                                                     &output_tensor));
    float* output = output_tensor->flat<float>().data();

    // Every box's taps, and its footprint: the rows and columns it writes to.
    std::vector<Tap> rows(static_cast<size_t>(num_boxes) * crop_height);
    std::vector<Tap> columns(static_cast<size_t>(num_boxes) * crop_width);
    std::vector<int> footprints(static_cast<size_t>(num_boxes) * 4);
    for (int b = 0; b < num_boxes; ++b) {
      const float* box = boxes + 4 * b;
      Tap* row = &rows[static_cast<size_t>(b) * crop_height];
      Tap* column = &columns[static_cast<size_t>(b) * crop_width];
      PlaceTaps(box[0], box[2], height_, crop_height, row);
      PlaceTaps(box[1], box[3], width_, crop_width, column);
      int* footprint = &footprints[4 * b];  // first row, last row, first column, last column
      footprint[0] = height_, footprint[1] = -1, footprint[2] = width_, footprint[3] = -1;
      for (int y = 0; y < crop_height; ++y) {
        if (!row[y].inside) continue;
        footprint[0] = std::min(footprint[0], row[y].low);
        footprint[1] = std::max(footprint[1], row[y].high);
      }
      for (int x = 0; x < crop_width; ++x) {
        if (!column[x].inside) continue;
        footprint[2] = std::min(footprint[2], column[x].low);
        footprint[3] = std::max(footprint[3], column[x].high);
      }
    }

    // A unit of work is one band of rows of one image; enough bands that every thread
    // has some even for one image.
    const int bands_per_image = std::min(height_, 16);
    const int band_height = (height_ + bands_per_image - 1) / bands_per_image;
    const int64_t row_size = static_cast<int64_t>(width_) * depth;
    const int64_t crop_size = static_cast<int64_t>(crop_height) * crop_width * depth;

    auto work = [&](int64_t first_unit, int64_t end_unit) {
      std::vector<float> box_sum(static_cast<size_t>(band_height) * row_size);  // one box's gradient on the band
      for (int64_t unit = first_unit; unit < end_unit; ++unit) {
        const int image = unit / bands_per_image;
        const int top_row = (unit % bands_per_image) * band_height;
        const int end_row = std::min(height_, top_row + band_height);
        if (top_row >= end_row) continue;
        float* band = output + (static_cast<int64_t>(image) * height_ + top_row) * row_size;
        std::fill(band, band + (end_row - top_row) * row_size, 0.0f);
        for (int b = 0; b < num_boxes; ++b) {
          if (box_index[b] != image) continue;
          const int* footprint = &footprints[4 * b];
          const int first = std::max(top_row, footprint[0]), last = std::min(end_row - 1, footprint[1]);
          if (first > last || footprint[2] > footprint[3]) continue;
          const int64_t column_offset = static_cast<int64_t>(footprint[2]) * depth;
          const int64_t footprint_width = static_cast<int64_t>(footprint[3] - footprint[2] + 1) * depth;
          for (int r = first; r <= last; ++r) {
            float* start = &box_sum[(r - top_row) * row_size + column_offset];
            std::fill(start, start + footprint_width, 0.0f);
          }
          const Tap* row = &rows[static_cast<size_t>(b) * crop_height];
          const Tap* column = &columns[static_cast<size_t>(b) * crop_width];
          for (int y = 0; y < crop_height; ++y) {
            if (!row[y].inside) continue;
            const bool top_in_band = row[y].low >= top_row && row[y].low < end_row;
            const bool bottom_in_band = row[y].high >= top_row && row[y].high < end_row;
            if (!top_in_band && !bottom_in_band) continue;
            const float y_lerp = row[y].lerp;
            // Only a row inside the band has a place in box_sum (the other is never written).
            float* top = top_in_band ? box_sum.data() + (row[y].low - top_row) * row_size : nullptr;
            float* bottom = bottom_in_band ? box_sum.data() + (row[y].high - top_row) * row_size : nullptr;
            const float* upstream = grads + b * crop_size + static_cast<int64_t>(y) * crop_width * depth;
            for (int x = 0; x < crop_width; ++x) {
              if (!column[x].inside) continue;
              const float x_lerp = column[x].lerp;
              const int64_t left = static_cast<int64_t>(column[x].low) * depth;
              const int64_t right = static_cast<int64_t>(column[x].high) * depth;
              for (int d = 0; d < depth; ++d) {
                // The four taps in CropAndResize's order: top left, top right, bottom left, bottom right.
                const float value = upstream[x * depth + d];
                const float to_top = (1 - y_lerp) * value;
                if (top_in_band) {
                  top[left + d] += (1 - x_lerp) * to_top;
                  top[right + d] += x_lerp * to_top;
                }
                const float to_bottom = y_lerp * value;
                if (bottom_in_band) {
                  bottom[left + d] += (1 - x_lerp) * to_bottom;
                  bottom[right + d] += x_lerp * to_bottom;
                }
              }
            }
          }
          for (int r = first; r <= last; ++r) {
            float* total = band + (r - top_row) * row_size + column_offset;
            const float* sum = &box_sum[(r - top_row) * row_size + column_offset];
            for (int64_t i = 0; i < footprint_width; ++i) total[i] += sum[i];
          }
        }
      }
    };
    const int64_t units = static_cast<int64_t>(num_images_) * bands_per_image;
    const int64_t cost_per_unit = 8 * static_cast<int64_t>(num_boxes) * crop_size / units;
    const auto& threads = *context->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(threads.num_threads, threads.workers, units, cost_per_unit, work);
  }

 private:
  int num_images_, height_, width_;
};

REGISTER_KERNEL_BUILDER(Name("MacoCropAndResizeGradImage").Device(DEVICE_CPU), CropAndResizeGradImageOp);

}  // namespace maco_keras
