"""pyLDAvis on a distlda model, saved as a page that needs no network."""
import os
import shutil

import pyLDAvis
import pyLDAvis.gensim_models
import pyLDAvis.urls
from gensim.corpora import Dictionary

from distlda.models import LdaModel

texts = [["socket", "network", "bytes", "send"], ["file", "path", "read", "lines"],
         ["thread", "lock", "queue", "wait"]] * 20
dictionary = Dictionary(texts)
corpus = [dictionary.doc2bow(t) for t in texts]
lda = LdaModel(corpus, num_topics=3, id2word=dictionary, iterations=50, random_state=0,
               distributed=False)

vis = pyLDAvis.gensim_models.prepare(lda, corpus, dictionary, n_jobs=1)

# pyLDAvis ships d3 and its own script and style sheet: copy them next to the page and link
# them by relative paths, so the page (with its folder) opens offline anywhere.
os.makedirs("ldavis_js", exist_ok=True)
local = {}
for key, src in (("d3_url", pyLDAvis.urls.D3_LOCAL), ("ldavis_url", pyLDAvis.urls.LDAVIS_LOCAL),
                 ("ldavis_css_url", pyLDAvis.urls.LDAVIS_CSS_LOCAL)):
    shutil.copy(src, "ldavis_js")
    local[key] = "ldavis_js/" + os.path.basename(src)
pyLDAvis.save_html(vis, "topics.html", **local)
