"""distlda in a scikit-learn Pipeline and GridSearchCV, behind a CountVectorizer."""
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from distlda.sklearn import GibbsLDA

docs = ["socket network bytes send", "file path read lines",
        "thread lock queue wait"] * 20
pipe = Pipeline([("counts", CountVectorizer()),
                 ("lda", GibbsLDA(n_components=3, max_iter=30, random_state=0))])
theta = pipe.fit_transform(docs)              # documents x topics, rows sum to 1
print(theta.shape)

search = GridSearchCV(pipe, {"lda__n_components": [2, 3, 4]}, cv=3)
search.fit(docs)                              # scored by held-out log-likelihood per token
print(search.best_params_)

lda = search.best_estimator_.named_steps["lda"]
words = search.best_estimator_.named_steps["counts"].get_feature_names_out()
for k, row in enumerate(lda.components_):
    print(k, [words[i] for i in row.argsort()[::-1][:4]])
